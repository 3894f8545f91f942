"""The file formats a bulk job reads and writes, and how Spark reads and writes each."""

from __future__ import annotations

from enum import Enum

from app.jsonl import READ_AS_JSONL
from app.offline import FIELD_CHARS

# Spark's PERMISSIVE mode puts a JSONL line that is not a JSON object in this column (not Spark's default name,
# _corrupt_record, which an input may hold as a column of its own).
CORRUPT = "_reputation_bulk_unreadable_line"


class Format(str, Enum):
    JSONL = "jsonl"
    CSV = "csv"
    PARQUET = "parquet"

    @classmethod
    def of(cls, path: str) -> "Format | None":
        """The format a path's name says (``.jsonl``, ``.ndjson``, ``.json``, ``.csv``, ``.parquet``), else None."""
        name = path.rstrip("/").lower()
        if name.endswith(READ_AS_JSONL):
            return cls.JSONL
        if name.endswith(".csv"):
            return cls.CSV
        if name.endswith((".parquet", ".pq")):
            return cls.PARQUET
        return None

    def read(self, spark, path: str):
        """A DataFrame of the file or directory; unreadable JSONL lines land in CORRUPT, CSV is all strings."""
        reader = spark.read
        if self is Format.JSONL:
            return reader.options(mode="PERMISSIVE", columnNameOfCorruptRecord=CORRUPT).json(path)
        if self is Format.CSV:
            # Quoted fields may hold newlines and doubled quotes, as Python's csv module writes them. As the offline
            # command's reader: a quote in a quoted field that is not doubled (an unclosed quote closing on a later
            # row) fails the job instead of merging the rows between, and so does a field over its FIELD_CHARS.
            # Every file's first row is its header, the same in each (enforceSchema off: Spark would otherwise
            # drop a file's first row, maybe a tweet, and take its columns by position).
            return reader.options(header=True, enforceSchema=False, multiLine=True, escape='"', mode="PERMISSIVE",
                                  columnNameOfCorruptRecord=CORRUPT,
                                  unescapedQuoteHandling="RAISE_ERROR",
                                  maxCharsPerColumn=str(FIELD_CHARS)).csv(path)
        return reader.options(mergeSchema=True).parquet(path)  # files of a folder with other columns: all kept

    def write(self, frame, path: str) -> None:
        """Write a DataFrame as a directory of part files (JSONL or Parquet)."""
        if self is Format.JSONL:
            frame.write.json(path)
        elif self is Format.PARQUET:
            frame.write.parquet(path)
        else:
            raise ValueError(f"{self.value} is an input format only")

    def read_column(self, spark, path: str, column: str):
        """One string column of what :meth:`write` wrote, read back without the rest."""
        if self is Format.JSONL:
            return spark.read.schema(f"`{column}` STRING").json(path)
        return spark.read.parquet(path).select(column)
