"""The file formats a bulk job reads and writes, and how Spark reads and writes each."""

from __future__ import annotations

import re
from enum import Enum

from app.jsonl import READ_AS_JSONL
from app.offline import FIELD_CHARS

# Spark's PERMISSIVE mode puts a JSONL line that is not a JSON object in this column (not Spark's default name,
# _corrupt_record, which an input may hold as a column of its own).
CORRUPT = "_reputation_bulk_unreadable_line"

# A CSV line read as text, by the quote state it leaves, for the quote and delimiter that Format.read gives Spark (a
# quote inside an unquoted field is text, as Spark and the offline command read it; possessive: no backtracking).
_QUOTED = r'[^"]*+(?:""[^"]*+)*+'  # inside a quoted field: any text, its quotes doubled
_FIELD = rf'(?:"{_QUOTED}"|[^",][^,]*+)?'  # a whole field, quoted or not
_OPENS = rf'^(?:{_FIELD},)*+"{_QUOTED}$'  # from outside a quoted field, it ends inside one
_STAYS = rf'^{_QUOTED}(?:",(?:{_FIELD},)*+"{_QUOTED})?$'  # from inside one, it ends inside one
_MAY_START_INSIDE = rf'^{_QUOTED}(?:"(?:,|$)|$)'  # else a quote in it would be an error there: it starts outside


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
            # row) fails the job instead of merging the rows between, and so does a field over its FIELD_CHARS; a
            # quote still open at the end of a file is no error to Spark (see unclosed_at_end).
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
        """One string column of what :meth:`write` wrote, read back without the rest (its path taken as it is: Spark
        reads a path with glob characters, as OUTPUT[1], as a glob, which matches no folder of that name)."""
        literal = re.sub(r"([\\\[\]{}*?])", r"\\\1", path)
        if self is Format.JSONL:
            return spark.read.schema(f"`{column}` STRING").json(literal)
        return spark.read.parquet(literal).select(column)


def unclosed_at_end(spark, path: str) -> list[str]:
    """The CSV files of ``path`` that end inside a quoted field, which Spark's reader closes there, merging every
    row after its quote into one field. A distributed pass over the lines that hold a quote: a line leaves one state
    whatever state it starts in (``fixed``), the other one than it starts in (a swap) or the same one; a file ends in
    its last fixed line's state (outside where none), flipped by each swap after that line."""
    from pyspark.sql import functions as F

    line = F.col("value")
    lines = spark.read.text(path).where(line.contains('"')).select(
        F.col("_metadata.file_path").alias("file"),
        F.struct("_metadata.file_block_start", F.monotonically_increasing_id()).alias("at"),  # order in its file
        line.rlike(_OPENS).alias("from_out"),
        F.when(line.rlike(_MAY_START_INSIDE), line.rlike(_STAYS)).alias("from_in"))  # null: cannot start inside
    fixed = F.col("from_in").isNull() | (F.col("from_in") == F.col("from_out"))
    files = lines.groupBy("file").agg(
        F.max(F.when(fixed, F.struct("at", F.col("from_out").alias("inside")))).alias("last"),
        F.collect_list(F.when(F.col("from_out") & ~F.col("from_in"), F.col("at"))).alias("swaps"))
    flips = F.size(F.filter("swaps", lambda at: F.coalesce(at > F.col("last.at"), F.lit(True))))
    ends_inside = F.coalesce(F.col("last.inside"), F.lit(False)) != (flips % 2 == 1)
    return sorted(row.file for row in files.where(ends_inside).select("file").collect())
