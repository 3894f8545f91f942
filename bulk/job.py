"""The driver's side of a bulk job: verify the bundle, ship it and the code with Spark, classify, write atomically."""

from __future__ import annotations

import atexit
import contextlib
import functools
import hashlib
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import uuid
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import app
from app.bundle import Bundle
from app.classifier import Classifier
from app.config import Config
from app.errors import AppError, os_error_line
from app.offline import FIELD_CHARS, describe_columns, describe_header, repeated_columns

from . import worker
from .formats import CORRUPT, Format, unclosed_at_end
from .worker import ABOUT, ENTITY, ERROR, PREDICTED, RELATED, SCORES, TEXT, Task

CASE_SENSITIVE = "spark.sql.caseSensitive"
_READ_FILE = re.compile(r"while reading file (\S+?)\.?\s")  # in Spark's FAILED_READ_FILE message
_ALREADY_EXISTS = re.compile(r"column (`[^`]*`) already exists")  # in Spark's COLUMN_ALREADY_EXISTS message
_PYTHON_RAISED = re.compile(r"[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt): ")
# Spark's messages for a CSV file whose first row differs from the header it read first (names, then their number)
_HEADER_MISMATCH = ("CSV header does not conform", "Number of column in CSV header is not equal to number of fields")
_JAVA_VERSION = re.compile(r'version "(?:1\.)?(\d+)')  # in `java -version`: "17.0.15", or "1.8.0_392" for Java 8
JAVA_MINIMUM = 17  # Spark 4's
PACKAGES = (Path(app.__file__).parent, Path(__file__).parent)  # the code the executors import
# The driver's loggers (and in local mode the executors') that print a failed task's Java stack trace, and with it
# the record it failed on, maybe a tweet (the job's error is the one line the command prints last), a CSV file's
# first row, or a stack trace for a glob input that matches (its check for a streaming sink's metadata).
_QUIET_LOGGERS = ("org.apache.spark.executor.Executor", "org.apache.spark.scheduler.TaskSetManager",
                  "org.apache.spark.sql.execution.datasources.FileFormatWriter",
                  "org.apache.spark.TaskContextImpl", "org.apache.spark.util.Utils",
                  "org.apache.hadoop.mapreduce.lib.output.FileOutputCommitter",
                  "org.apache.spark.sql.catalyst.csv.CSVHeaderChecker",
                  "org.apache.spark.sql.execution.streaming.sinks.FileStreamSink")


class BulkError(Exception):
    """A bulk job that cannot start or finish; the message is one line saying why."""


@dataclass(frozen=True)
class Options:
    input: str
    output: str
    bundle: Path | None = None  # None: BUNDLE, else the default bundle, as for the offline command
    master: str | None = None
    input_format: Format | None = None
    output_format: Format = Format.PARQUET
    keep_text: bool = False
    threads: int = 1
    partitions: int | None = None
    overwrite: bool = False
    conf: tuple[tuple[str, str], ...] = ()


def verify(path: Path) -> Bundle:
    """The bundle, checked as the edge loader checks it and run once here, before Spark starts."""
    try:
        bundle = Bundle.load(path)
        Classifier(bundle, threads=1)
    except AppError as exc:  # a bad bundle, or no TFLite runtime
        raise BulkError(str(exc)) from None
    return bundle


def check_master(master: str) -> None:
    """Refuse a ``spark://`` master (HOST:PORT, as the command line checks it) none of whose addresses takes a
    connection (Spark retries for about a minute and prints Java's traces before giving up)."""
    if not master.startswith("spark://"):
        return
    reasons = []
    for address in master.removeprefix("spark://").split(","):
        host, _, port = address.rpartition(":")
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
            return
        except OSError as exc:
            reasons.append(f"{address}: {exc.strerror or exc}")
    raise BulkError(f"Spark master {master}: no connection ({'; '.join(reasons)}): is it started, and is this its address?")


def check_cores(master: str, cpus: int) -> None:
    """Refuse ``cpus`` cores per task on a local master with fewer (Spark would fail its context's start with a Java
    stack trace); ``local[*]`` has the cores this process may run on."""
    local = re.fullmatch(r"local(?:\[(\*|\d+)(?:,\d+)?\])?", master)
    if local is None:
        return
    cores = len(os.sched_getaffinity(0)) if local.group(1) == "*" else int(local.group(1) or 1)
    if cpus > cores:
        raise BulkError(f"--threads {cpus} takes {cpus} cores per task, and {master} has {cores}: give fewer "
                        "threads or more cores")


def without_py4j_tracebacks() -> None:
    """py4j logs a call cut short (Ctrl-C, SIGTERM) through the root logger, with tracebacks, before the job says
    'interrupted': the root logger as logging would set it up at that call, less py4j's records. Where a program has
    set up logging already (the tests' pytest), it is left as it is."""
    handler = logging.StreamHandler()
    handler.addFilter(lambda record: f"{os.sep}py4j{os.sep}" not in record.pathname)
    logging.basicConfig(handlers=[handler])


def submitted() -> bool:
    """Whether spark-submit started this driver (its JVM runs already, and it set the Python to use)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def check_java() -> None:
    """Refuse the Java Spark would start where it is older than Spark 4 takes: its JVM would exit on a class version
    error, which Spark reports only as its gateway exiting. A missing one is said where the gateway fails."""
    java = Path(os.environ["JAVA_HOME"], "bin", "java") if os.environ.get("JAVA_HOME") else shutil.which("java")
    try:
        shown = subprocess.run([str(java), "-version"], capture_output=True, text=True, timeout=60) if java else None
    except (OSError, subprocess.TimeoutExpired):
        return
    found = _JAVA_VERSION.search(shown.stderr + shown.stdout) if shown else None
    if found and int(found.group(1)) < JAVA_MINIMUM:
        raise BulkError(f"Spark 4 needs Java {JAVA_MINIMUM} or later, and {java} is Java {found.group(1)}: set JAVA_HOME "
                        f"to a Java {JAVA_MINIMUM} (Debian's openjdk-17-jre-headless)")


def start(opts: Options):
    """A Spark session: the master given (spark-submit's, else local[*]), Spark's console progress bar on a terminal,
    one task slot per ``threads`` cores; locally, the workers run this interpreter."""
    from pyspark.sql import SparkSession

    settings = {"spark.ui.showConsoleProgress": str(sys.stderr.isatty()).lower(),  # a bar, not lines in a log
                "spark.task.cpus": str(opts.threads)}
    if (opts.master or "local").startswith("local") and not submitted():
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # PySpark reads it at the context's start
    builder = SparkSession.builder.appName("reputation-bulk")
    if opts.master:
        builder = builder.master(opts.master)
    for key, value in {**settings, **dict(opts.conf)}.items():
        builder = builder.config(key, value)
    before = _children()
    try:
        spark = builder.getOrCreate()
    except BaseException:  # Ctrl-C or SIGTERM while PySpark waited for its JVM: that JVM would wait for ever
        for pid in _children() - before:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        raise
    spark.sparkContext.setLogLevel("WARN")
    _quiet_loggers(spark)
    context = spark.sparkContext
    print(f"Spark {spark.version}, master {context.master}, UI {context.uiWebUrl or 'off'}", file=sys.stderr)
    return spark


def _children() -> set[int]:
    """The processes this one started, from /proc (none where there is no /proc): the JVM PySpark starts is one."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            if int(stat.read_text().rpartition(")")[2].split()[1]) == os.getpid():
                found.add(int(stat.parent.name))
    return found


def _quiet_loggers(spark) -> None:
    """Turn off _QUIET_LOGGERS through Log4j 2 (Spark's own logging); a driver with another logging backend
    keeps them, with a note."""
    from py4j.protocol import Py4JError

    log4j = spark.sparkContext._jvm.org.apache.logging.log4j
    try:
        for name in _QUIET_LOGGERS:
            log4j.core.config.Configurator.setLevel(name, log4j.Level.OFF)
    except Py4JError:
        print("note: this Spark does not log through Log4j 2: a failed task's log may show the record it failed on",
              file=sys.stderr)


def _digest(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


@functools.cache
def _staging() -> Path:
    """Where this process keeps what it gives Spark: it must outlive every job of the session (executors fetch
    it when their first task starts); removed when the process exits."""
    path = Path(tempfile.mkdtemp(prefix="bulk-"))
    atexit.register(shutil.rmtree, path, True)
    return path


def ship(spark, bundle: Bundle) -> str:
    """Give the executors the bundle, a tar archive that Spark unpacks under SparkFiles, and the code of ``app`` and
    ``bulk`` (their modules and the data files they read as resources), a zip that Spark puts on the Python workers'
    path; each named by content and added once per session. The bundle archive's name."""
    files = [bundle.path / name for name in ("manifest.json", *sorted(bundle.manifest()["files"]))]
    sources = sorted(p for package in PACKAGES for p in package.rglob("*")
                     if p.is_file() and "__pycache__" not in p.parts and p.parent.name != "static" and p.name != "page.html")
    context = spark.sparkContext
    try:
        archive = _staging() / f"bundle-{_digest(files)}.tar"
        code = _staging() / f"bulk-code-{_digest(sources)}.zip"
        if archive.name not in {Path(uri).name for uri in context.listArchives}:
            with tarfile.open(archive, "w") as tar:
                for path in files:
                    tar.add(path, arcname=path.relative_to(bundle.path).as_posix())
            context.addArchive(str(archive))
        if code.name not in {Path(uri).name for uri in context.listFiles}:
            with zipfile.ZipFile(code, "w") as zip_file:
                for path in sources:
                    zip_file.write(path, path.relative_to(PACKAGES[0].parent).as_posix())
            context.addPyFile(str(code))
    except OSError as exc:  # a full or read-only temporary folder
        raise BulkError(f"cannot stage the bundle and code for Spark: {os_error_line(exc)}") from None
    return archive.name


def prepare(frame, partitions: int | None, parallelism: int, csv_header: bool = False):
    """Text and entity as valid UTF-8 strings, input columns named like an output renamed ``input_<name>``, and at least
    ``parallelism`` partitions (or exactly ``partitions``). ``csv_header``: the column names are a CSV's first row,
    which in a file without a header row is a tweet (not named in an error)."""
    from pyspark.sql import functions as F

    for name in frame.columns:  # Excel's CSV starts with a byte-order mark, which Spark keeps in the first name
        if name.startswith("\ufeff"):
            frame = frame.withColumnRenamed(name, name.removeprefix("\ufeff"))
    # Spark reads a CSV header that names a column twice as name<index> for each: offline refuses it so.
    renamed = {base for base in (TEXT, ENTITY) if base not in frame.columns
               and sum(c == f"{base}{i}" for i, c in enumerate(frame.columns)) > 1}
    named = [next((base for base in renamed if c == f"{base}{i}"), c) for i, c in enumerate(frame.columns)]
    if csv_header and (why := repeated_columns(named, (TEXT, ENTITY))):
        raise BulkError(why)
    if TEXT not in frame.columns:
        columns = [c for c in frame.columns if c != CORRUPT]
        raise BulkError(f"the input has no '{TEXT}' column (columns: "
                        f"{describe_header(columns, (TEXT, ENTITY)) if csv_header else describe_columns(columns)})")
    for name in frame.columns:  # in any case: a case-insensitive reader of the output would find it twice
        if name.lower() in PREDICTED:
            frame = frame.withColumnRenamed(name, f"input_{name}")
            print(f"note: the input's column '{name}' is written as 'input_{name}'", file=sys.stderr)
    # Bytes that are not UTF-8 become U+FFFD, as the offline command reads them (errors="replace").
    for name in (TEXT, ENTITY) if ENTITY in frame.columns else (TEXT,):
        frame = frame.withColumn(name, F.make_valid_utf8(F.col(name).cast("string")))
    if partitions or frame.rdd.getNumPartitions() < parallelism:
        frame = frame.repartition(partitions or parallelism)
    return frame


def check_quotes_closed(spark, path: str) -> None:
    """Refuse CSV input with a file that ends inside a quoted field (every row after an unclosed quote would be
    classified as one tweet), as the offline command refuses it."""
    if files := unclosed_at_end(spark, path):
        others = f" (and {len(files) - 1} other files)" if len(files) > 1 else ""
        raise BulkError(f"{files[0]}{others}: a quoted field is still open at the end of the file (an unclosed quote: "
                        "the rows after it would be read as one field)")


def output_schema(schema, task: Task):
    """The input's kept fields, then label, scores (a struct of one double per label), related, about, error."""
    from pyspark.sql.types import BooleanType, DoubleType, StringType, StructField, StructType

    fields = [f for f in schema.fields if f.name not in task.dropped]
    fields += [StructField(worker.LABEL, StringType()),
               StructField(SCORES, StructType([StructField(name, DoubleType()) for name in task.labels]))]
    if task.has_related:
        fields += [StructField(RELATED, DoubleType()), StructField(ABOUT, BooleanType())]
    return StructType(fields + [StructField(ERROR, StringType())])


def classify(frame, task: Task):
    """The frame with its predictions, computed by app's Classifier in the Python workers on Arrow batches. The input's
    other columns pass through under names of their own, then take theirs back: PySpark's mapInArrow looks each column
    up by its name, read as a path (a column named user.screen_name, as flattened JSON names them, stopped the job)."""
    names = frame.columns
    plain = [name if name in (TEXT, ENTITY, CORRUPT) else f"_bulk_column_{i}" for i, name in enumerate(names)]
    frame = frame.toDF(*plain)
    result = frame.mapInArrow(functools.partial(worker.classify_batches, task), output_schema(frame.schema, task))
    original = dict(zip(plain, names))
    return result.toDF(*[original.get(name, name) for name in result.columns])


def _file_system(spark, path: str):
    """Hadoop's file system of ``path`` (local, hdfs://, s3a://, ...) and the path, qualified."""
    hadoop_path = spark.sparkContext._jvm.org.apache.hadoop.fs.Path(path)
    fs = hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    return fs, fs.makeQualified(hadoop_path)


def check_paths(spark, opts: Options, bundle: Path) -> None:
    """INPUT exists (a file, a directory or a glob that matches); OUTPUT neither holds an input nor is inside or around
    the bundle, and does not exist, or with ``overwrite`` is an earlier job's output: checked before Spark reads
    anything (its own check logs a Java stack trace first)."""
    fs, source = _file_system(spark, opts.input)
    found = fs.globStatus(source)
    if found is None or len(found) == 0:
        raise BulkError(f"{opts.input}: no such file or directory")
    _check_no_skipped_files(fs, found, opts.input)
    fs, final = _file_system(spark, opts.output)
    target = _real(final.toString())
    jvm = spark.sparkContext._jvm
    local = jvm.org.apache.hadoop.fs.FileSystem.getLocal(spark.sparkContext._jsc.hadoopConfiguration())
    model = local.makeQualified(jvm.org.apache.hadoop.fs.Path(str(bundle.resolve()))).toString()
    for folder, what in [(model, "the bundle's folder")] + [(_real(s.getPath().toString()), "the input") for s in found]:
        if _within(folder, target) or _within(target, folder):
            raise BulkError(f"{opts.output} is {what}, inside it or around it: give another OUTPUT")
    _check_replaceable(spark, fs, final, opts)
    _check_writable(spark, fs, final, opts)
    name = final.getName()
    pattern = jvm.org.apache.hadoop.fs.Path(final.getParent(), re.sub(r"([\\\[\]{}*?])", r"\\\1", name) + ".*-????????")
    left_behind = re.compile(re.escape(name) + r"\.(partial|replaced)-[0-9a-f]{8}")
    if names := sorted(n for s in fs.globStatus(pattern) or [] if left_behind.fullmatch(n := s.getPath().getName())):
        print(f"note: {', '.join(names)} beside OUTPUT: left by a job that was killed (or written by one running now); "
              "remove what no job writes", file=sys.stderr)


def _check_no_skipped_files(fs, found, given: str) -> None:
    """Refuse an input folder holding files Spark would skip without a word: it reads a folder's own files or, where
    the folder has partition folders (name=value), only theirs (every file under one, with its values). The files of
    any other subfolder (a folder of 2025/01/...), and a folder's own files beside partition folders, were left out,
    the summary counting the rest as the whole input."""
    for folder in (status.getPath() for status in found if status.isDirectory()):
        children = [c for c in fs.listStatus(folder) if not c.getPath().getName().startswith(("_", "."))]
        partitions = [c for c in children if c.isDirectory() and "=" in c.getPath().getName()]
        others = [c for c in children if c.isDirectory() and "=" not in c.getPath().getName()]
        files = [c for c in children if not c.isDirectory()]
        if others:
            raise BulkError(f"{given}: Spark would skip the files in its subfolders ({_some(others)}): it reads a "
                            "folder's own files or its partition folders' (name=value); give a glob that names the "
                            "files, or each folder")
        if partitions and files:
            raise BulkError(f"{given}: Spark would skip its own files ({_some(files)}) beside its partition folders "
                            f"({_some(partitions)}): it reads only the partition folders' files; give a glob that "
                            "names the files, or move them into a partition folder")


def _some(statuses) -> str:
    """The names of some files or folders, for a message."""
    names = sorted(status.getPath().getName() for status in statuses)
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def _check_writable(spark, fs, final, opts: Options) -> None:
    """The folder OUTPUT goes in (or the deepest of its parents that exists, which Spark would create it under)
    takes a new folder, made and removed here: a read-only place, or a file on the way, would otherwise fail the job
    only when it writes, after classifying everything."""
    from py4j.protocol import Py4JJavaError

    folder = final.getParent()
    while folder.getParent() is not None and not fs.exists(folder):
        folder = folder.getParent()
    probe = spark.sparkContext._jvm.org.apache.hadoop.fs.Path(folder, f".{final.getName()}.probe-{uuid.uuid4().hex[:8]}")
    why = ""
    try:
        made = fs.mkdirs(probe)
    except Py4JJavaError as exc:
        made, why = False, f" ({(_lines(str(exc.java_exception.getMessage() or '')) or [''])[0]})"
    if not made:
        raise BulkError(f"{opts.output}: no folder can be written there{why}: give another OUTPUT")
    fs.delete(probe, True)


def _check_replaceable(spark, fs, final, opts: Options, meanwhile: bool = False) -> None:
    """OUTPUT does not exist, or with ``overwrite`` is an earlier job's output; ``meanwhile``: checked again as the job
    ends (another job's output may have appeared there, which is left as it is)."""
    if not fs.exists(final):
        return
    if not opts.overwrite:
        why = "exists (pass --overwrite to replace it)"
    elif not fs.exists(spark.sparkContext._jvm.org.apache.hadoop.fs.Path(final, "_SUCCESS")):
        why = "is not an earlier job's output (no _SUCCESS in it), which is all that --overwrite replaces"
    else:
        return
    raise BulkError(f"{opts.output} appeared while this job ran and {why}: it is left as it is, and this job's output "
                    "is not kept" if meanwhile else f"{opts.output} {why}")


def _within(path: str, folder: str) -> bool:
    """Whether ``path`` is ``folder`` or inside it (qualified paths)."""
    folder = folder.rstrip("/")
    return path.rstrip("/") == folder or path.startswith(folder + "/")


def write(spark, frame, opts: Options, after_exit: list | None = None) -> dict[str | None, int]:
    """Write next to OUTPUT, count rows by error (None: classified) from what was written, then rename it into
    place; a job that fails leaves no new output, and an output it replaces is kept until the new one is in place.
    ``after_exit``: where to leave the tidy-up, to run again once Spark's JVM has exited (a task that a Ctrl-C, a
    SIGTERM or another task's failure cancelled runs on, and may write the partial folder again after its removal)."""
    hadoop_path = spark.sparkContext._jvm.org.apache.hadoop.fs.Path
    fs, final = _file_system(spark, opts.output)  # refused before the job where it exists without --overwrite
    tag = uuid.uuid4().hex[:8]
    partial_path = hadoop_path(final.getParent(), f"{final.getName()}.partial-{tag}")
    replaced = hadoop_path(final.getParent(), f"{final.getName()}.replaced-{tag}")
    uris = (final.toString(), partial_path.toString(), replaced.toString())  # for a tidy-up after Spark's JVM is gone
    try:
        opts.output_format.write(frame, partial_path.toString())
        rows = opts.output_format.read_column(spark, partial_path.toString(), ERROR).groupBy(ERROR).count().collect()
        _check_replaceable(spark, fs, final, opts, meanwhile=True)  # checked at the start: another job may have written it
        if fs.exists(final) and not fs.rename(final, replaced):
            raise BulkError(f"could not move the old {opts.output} aside")
        if fs.exists(final):  # a rename onto a folder would move this output into it
            raise BulkError(f"{opts.output} appeared while this job ran: it is left as it is, and this job's output is "
                            "not kept")
        if not fs.rename(partial_path, final):
            raise BulkError(f"could not rename {partial_path.toString()} to {opts.output}")
        if fs.exists(replaced):
            fs.delete(replaced, True)
    finally:
        _tidy(spark, fs, final, partial_path, replaced, uris)
        if after_exit is not None:
            after_exit.append(functools.partial(_tidy_after_exit, spark, uris))
    return {row[0]: row[1] for row in rows}


def _tidy(spark, fs, final, partial, replaced, uris: tuple[str, str, str]) -> None:
    """After a write, whatever ended it: an old output moved aside is put back where the new one is not in place (and
    removed where it is), and the partial output is removed; through the local file system (``uris``: the three
    paths, qualified) once Spark's JVM has exited, where it is gone (a SIGTERM to the whole process group, as systemd
    sends, stops it too), else left for the next job's note."""
    from py4j.protocol import Py4JError, Py4JJavaError

    try:
        _put_back(fs.exists, fs.rename, lambda path: fs.delete(path, True), final, partial, replaced)
    except Py4JJavaError:  # the file system refused (the JVM runs): left for the next job's note
        pass
    except Py4JError:
        _tidy_after_exit(spark, uris)


def _tidy_after_exit(spark, uris: tuple[str, str, str]) -> None:
    """:func:`_put_back` through the local file system (``uris``: OUTPUT, the partial and the replaced output,
    qualified), once Spark's JVM has exited; nothing where it runs on, or the paths are another file system's."""
    local = [_local(uri) for uri in uris]
    if None not in local and _jvm_exited(spark):
        with contextlib.suppress(OSError):
            _put_back(Path.exists, Path.rename, shutil.rmtree, *local)


def _put_back(exists, rename, remove, final, partial, replaced) -> None:
    """The old output back in place where the new one is not (removed where it is); the partial output removed."""
    if exists(replaced):
        if not exists(final):
            rename(replaced, final)
        elif not exists(partial):  # cut off after the new output's rename
            remove(replaced)
    if exists(partial):
        remove(partial)


def _end_jvm(spark) -> None:
    """Make the JVM PySpark started exit, as it does when this process exits (its standard input closed): a task
    that was cancelled but still runs writes nothing more once it has."""
    process = getattr(getattr(spark.sparkContext, "_gateway", None), "proc", None)
    if process is not None and process.stdin is not None:  # not spark-submit's JVM
        with contextlib.suppress(OSError):
            process.stdin.close()


def _forget_jvm() -> None:
    """Have PySpark start a JVM of its own for a later session in this process, where the one it started has exited
    (:func:`_end_jvm`): it would otherwise reuse that one's gateway, and the next job fail with "Connection refused"."""
    from pyspark import SparkContext

    process = getattr(SparkContext._gateway, "proc", None)
    if process is not None and process.poll() is not None:
        SparkContext._gateway = SparkContext._jvm = None


def _jvm_exited(spark, seconds: float = 30) -> bool:
    """Wait for the JVM PySpark started to exit (its shutdown may still write task files); False where it did not
    start one or it still runs."""
    process = getattr(getattr(spark.sparkContext, "_gateway", None), "proc", None)
    if process is None:
        return False
    try:
        process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        return False
    return True


def _real(uri: str) -> str:
    """A qualified path, where it is a local one with its symbolic links resolved (an OUTPUT given through a link to
    the input's folder or the bundle's is inside it)."""
    path = _local(uri)
    return f"file:{os.path.realpath(path)}" if path is not None else uri


def _local(uri: str) -> Path | None:
    """The local path of a qualified Hadoop path (``file:/...``), None for another file system's."""
    return Path(re.sub(r"^file:(//)?", "", uri)) if uri.startswith("file:") else None


@contextlib.contextmanager
def _one_line_errors(read_hint: str = "", start_hint: str = ""):
    """Spark's and Py4J's exceptions as a BulkError with the first line of their message (``read_hint`` after a
    file that could not be read, ``start_hint`` after a JVM that did not start)."""
    from py4j.protocol import Py4JError, Py4JJavaError
    from pyspark.errors import PySparkException

    try:
        yield
    except (PySparkException, Py4JError) as exc:
        text = str(exc.java_exception) if isinstance(exc, Py4JJavaError) else str(exc)
        lines = _lines(text) or [type(exc).__name__]
        line = lines[0]
        # A Python worker's failure: its exception's own line, not the traceback's header.
        raised = [line for line in lines if _PYTHON_RAISED.match(line)]
        if "Traceback" in text and raised:
            line = raised[-1]
        elif line.endswith(":"):  # a wrapper with nothing after its colon: the Java exception's deepest cause
            line = f"{line} {(_lines(_causes(exc)[-1]) or [''])[0]}"
        java_missing = "JAVA_GATEWAY" in text and shutil.which("java") is None and not os.environ.get("JAVA_HOME")
        hint = " (Spark needs Java 17: make bulk installs openjdk-17-jre-headless)" if java_missing else ""
        hint += start_hint if "JAVA_GATEWAY" in text else ""
        # Messages that quote a CSV record or header row (in a file without one, a tweet) are not repeated.
        header_cause = next((cause for cause in _causes(exc) if any(m in cause for m in _HEADER_MISMATCH)), None)
        if header_cause is not None:
            file = _READ_FILE.search(line)
            line = f"{file.group(1) if file else 'a CSV file'}: " + (
                _header_problem(header_cause) or "its first row is not the header row of the first file (every CSV "
                                                 "file of the input needs the same one, its columns in the same order)")
        elif "COLUMN_ALREADY_EXISTS" in line:  # a name given twice: a JSON object's key, a Parquet file's column
            key = _ALREADY_EXISTS.search(line)
            line = (f"the input names {f'the column {key.group(1)}' if key else 'a column'} twice (a key given twice in "
                    "a JSON object, or a column in a file), which Spark cannot read: give each once")
        elif "MALFORMED_CSV_RECORD" in line or "TextParsingException" in line:
            line = "a CSV record could not be read"
        hint += read_hint if any(m in line for m in ("FAILED_READ_FILE", "CSV record")) else ""
        raise BulkError(f"Spark: {line}{hint}") from None


def _header_problem(message: str) -> str | None:
    """What Spark's CSV header message says of the file's own header row: a name given twice (Spark's schema has each
    as name<index>) or none (as _c<index>), or another number of columns than the first file's; None where it is
    another file's header row."""
    if _HEADER_MISMATCH[1] in message:
        return ("its first row has another number of columns than the first file's header row (every CSV file of the "
                "input needs the same one)")
    mismatch = re.search(r"Expected: (.*) but found: (.*)$", message, re.MULTILINE)
    if mismatch is None:
        return None
    expected, found = mismatch.groups()
    if not found.strip() and re.fullmatch(r"_c\d+", expected):
        return ("its header row has a column without a name (a spreadsheet's empty last columns?): name each column "
                "or remove it")
    if found and re.fullmatch(re.escape(found) + r"\d+", expected, re.IGNORECASE):
        return "its header row names a column more than once: give each column once"
    return None


def _causes(exc: Exception) -> list[str]:
    """The messages of a Java exception and of its causes, outermost first (the exception's own text if not Java's)."""
    cause, messages = getattr(exc, "java_exception", None) or getattr(exc, "_origin", None), []
    while cause is not None:
        messages.append(str(cause))
        cause = cause.getCause()
    return messages or [str(exc)]


def _lines(text: str) -> list[str]:
    return [line for line in text.strip().splitlines() if line.strip()]


def run(opts: Options, spark=None) -> dict[str | None, int]:
    """The whole job; counts of output rows by error (None: classified). Starts a session unless given one."""
    try:
        config = Config.offline_from_env()
    except AppError as exc:
        raise BulkError(str(exc)) from None
    own, case_sensitive, after_exit = spark is None, None, []
    if own and not submitted():
        check_java()
    bundle = verify(opts.bundle or config.bundle)
    source_format = opts.input_format or Format.of(opts.input)
    if source_format is None:
        raise BulkError(f"cannot tell the format of {opts.input} from its name: pass --format jsonl, csv or parquet")
    if own and opts.master:
        check_master(opts.master)
    conf = dict(opts.conf)  # a --conf of either wins over --master and --threads, as start() gives them to Spark
    task_cpus = conf.get("spark.task.cpus", str(opts.threads))
    if own and not submitted() and task_cpus.isdigit():
        check_cores(conf.get("spark.master", opts.master or "local[*]"), int(task_cpus))
    yarn = opts.master == "yarn" and not (os.environ.get("HADOOP_CONF_DIR") or os.environ.get("YARN_CONF_DIR"))
    try:
        csv_hint = f" (an unclosed quote, or a field over {FIELD_CHARS} characters?)"
        yarn_hint = " (yarn needs HADOOP_CONF_DIR or YARN_CONF_DIR, here or in Spark's spark-env.sh)" if yarn else ""
        with _one_line_errors(csv_hint if source_format is Format.CSV else "", yarn_hint):
            spark = spark or start(opts)
            case_sensitive = spark.conf.get(CASE_SENSITIVE)
            if CASE_SENSITIVE not in dict(opts.conf):  # columns 'ID' and 'id' told apart, unless the user says not
                spark.conf.set(CASE_SENSITIVE, "true")
            check_paths(spark, opts, bundle.path)
            task = Task(archive=ship(spark, bundle), labels=bundle.labels, has_related=bundle.has_related,
                        threads=opts.threads, bucket=config.length_bucket, max_batch=config.inference_batch,
                        max_chars=config.max_text_chars, dropped=(CORRUPT,) if opts.keep_text else (TEXT, CORRUPT))
            frame = prepare(source_format.read(spark, opts.input), opts.partitions,
                            spark.sparkContext.defaultParallelism, csv_header=source_format is Format.CSV)
            if source_format is Format.CSV:
                check_quotes_closed(spark, opts.input)
            return write(spark, classify(frame, task), opts, after_exit)
    except BaseException:
        if own and spark is not None and after_exit:  # a job cut off while it wrote (Ctrl-C, SIGTERM, a failed task)
            stop(spark)
            _end_jvm(spark)
            for tidy in after_exit:  # what a cancelled task wrote until its JVM exited
                tidy()
            _forget_jvm()
        raise
    finally:
        if own and spark is not None:
            stop(spark)  # before the error is printed, so that Spark's last lines come before it
        elif case_sensitive is not None:
            spark.conf.set(CASE_SENSITIVE, case_sensitive)  # a caller's session as it was


@contextlib.contextmanager
def session(opts: Options) -> Iterator:
    """A Spark session for ``opts`` (its Java checked first; a failure to start is a BulkError of one line), stopped
    on the way out."""
    check_java()
    with _one_line_errors():
        spark = start(opts)
    try:
        yield spark
    finally:
        stop(spark)


def stop(spark) -> None:
    """Stop a session this job started; one whose JVM is gone (a SIGTERM to the whole process group, the kernel's
    out-of-memory killer) has nothing left to stop."""
    from py4j.protocol import Py4JError

    with contextlib.suppress(Py4JError, OSError), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # PySpark's "Unable to cleanly shutdown Spark JVM process"
        spark.stop()
