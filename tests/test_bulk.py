"""`python -m bulk classify` on a real local Spark (local[2]): the device's labels and scores, bad rows counted,
output schemas, the bundle reached only through Spark's file distribution."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import DEFAULT_BUNDLE, FIXTURES, ROOT, TINY_BUNDLE, TINY_RELATED_BUNDLE, app_command, interrupted_when

pytest.importorskip("pyspark", reason="PySpark not installed (requirements-bulk.txt)")
pytestmark = pytest.mark.skipif(shutil.which("java") is None,
                                reason="no java: Spark needs Java 17 (.ci/run and make bulk install openjdk-17-jre-headless)")

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from app.bundle import Bundle  # noqa: E402
from app.classifier import Classifier  # noqa: E402
from app.offline import FIELD_CHARS  # noqa: E402
from bulk import worker  # noqa: E402
from bulk.formats import Format  # noqa: E402
from bulk.job import BulkError, Options, check_paths, classify, prepare, run, ship, start, verify, write  # noqa: E402

LOCAL = "local[2]"
QUIET = ("--conf", "spark.ui.enabled=false")


def bulk_command(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """``python -m bulk classify`` run from ``cwd`` (with ``env`` added), with the checkout on the driver's path only:
    Spark's Python workers (started in that directory, no PYTHONPATH) can import app and bulk only from what the job
    shipped."""
    boot = f"import sys; sys.path.insert(0, {str(ROOT)!r}); from bulk.__main__ import main; sys.exit(main())"
    return subprocess.run([sys.executable, "-c", boot, "classify", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, **env})


@pytest.fixture(scope="module")
def spark():
    session = start(Options(input="", output="", bundle=TINY_BUNDLE, master=LOCAL,
                            conf=(("spark.ui.enabled", "false"),)))
    yield session
    session.stop()


def read_jsonl_dir(path: Path) -> list[dict]:
    return [json.loads(line) for part in sorted(path.glob("part-*")) for line in part.read_text().splitlines()]


def test_same_labels_and_scores_as_the_offline_command(replab_sample, tmp_path):
    src = tmp_path / "tweets.jsonl"
    with src.open("w", encoding="utf-8") as fh:
        for i, example in enumerate(replab_sample):
            fh.write(json.dumps({"id": f"t{i}", "text": example.text, "entity": example.entity}) + "\n")
        fh.write(json.dumps({"id": "blank", "text": "   ", "entity": "BMW"}) + "\nnot json at all\n"
                 + json.dumps({"id": "no-text", "entity": "BMW"}) + "\n")
    with src.open("ab") as fh:  # bytes that are not UTF-8: Spark's JSON reader cannot read the line
        fh.write(b'{"id": "bad-bytes", "text": "caf\xe9 \xff", "entity": "BMW"}\n')
    offline = app_command("classify", str(src), "--out", str(tmp_path / "offline.jsonl"), "--bundle", str(DEFAULT_BUNDLE),
                          "--no-progress")
    assert offline.returncode == 0, offline.stderr
    expected = {r["id"]: r for r in map(json.loads, (tmp_path / "offline.jsonl").read_text().splitlines()) if "id" in r}

    out = tmp_path / "labels.parquet"
    result = bulk_command(tmp_path, str(src), str(out), "--bundle", str(DEFAULT_BUNDLE), "--master", LOCAL, "--partitions", "3",
                          *QUIET)
    assert result.returncode == 0, result.stderr[-3000:]
    n = len(replab_sample)
    assert f"classified {n} tweets, 4 errors (empty or missing text: 2; line is not a JSON object: 2)" in result.stderr
    table = pq.read_table(out)
    assert table.schema.names == ["entity", "id", "label", "scores", "related", "about", "error"]  # no text
    assert table.schema.field("about").type == pa.bool_()
    assert table.schema.field("scores").type == pa.struct([(name, pa.float64()) for name in
                                                            ("positive", "neutral", "negative")])
    rows = table.to_pylist()
    assert len(rows) == n + 4
    classified = {r["id"]: r for r in rows if r["error"] is None}
    assert len(classified) == n and set(classified) == {f"t{i}" for i in range(n)}
    for key, row in classified.items():
        assert [row[k] for k in ("label", "scores", "related", "about")] == \
            [expected[key][k] for k in ("label", "scores", "related", "about")], key
    assert sorted((r["id"] or "", r["error"]) for r in rows if r["error"]) == [
        ("", "line is not a JSON object"), ("", "line is not a JSON object"), ("blank", "empty or missing text"),
        ("no-text", "empty or missing text")]
    assert len({r["label"] for r in classified.values()}) > 1
    assert not list(tmp_path.glob("*.partial-*"))


def test_bundle_reached_only_through_spark_files(spark, tmp_path):
    """The bundle's directory is gone before any task runs: the workers load it from what Spark distributed."""
    copy = tmp_path / "bundle"
    shutil.copytree(TINY_RELATED_BUNDLE, copy)
    bundle = verify(copy)
    archive = ship(spark, bundle)
    shutil.rmtree(copy)
    from bulk.worker import Task

    task = Task(archive=archive, labels=bundle.labels, has_related=True, threads=1, bucket=8, max_batch=16,
                max_chars=4000, dropped=())
    frame = prepare(Format.CSV.read(spark, str(FIXTURES / "tweets.csv")), 4, 2)
    assert frame.rdd.getNumPartitions() == 4
    rows = [r.asDict(recursive=True) for r in classify(frame, task).collect()]
    with (FIXTURES / "tweets.csv").open(newline="", encoding="utf-8") as fh:
        source = list(csv.DictReader(fh))
    # The fixture's own label and related columns are kept, renamed.
    assert set(rows[0]) == {"text", "input_label", "entity", "input_related", "label", "scores", "related", "about",
                            "error"}
    assert sorted(r["text"] or "" for r in rows) == sorted(r["text"] for r in source)
    reference = Classifier(Bundle.load(TINY_RELATED_BUNDLE), threads=1)
    for row in rows:
        if row["error"] is None:
            (p,) = reference.classify([row["text"]], [row["entity"] or None])
            assert (row["label"], row["scores"], row["related"], row["about"]) == (p.label, p.scores, p.related, p.about)
    assert sum(r["error"] is None for r in rows) == sum(bool(r["text"].strip()) for r in source)


def test_parquet_in_jsonl_out_with_text_kept(spark, tmp_path):
    src = tmp_path / "day.parquet"
    pq.write_table(pa.table({"tweet_id": [10, 11, 12], "text": ["Acme recalls phones", None, "Acme, \"great\"\nday"],
                             "entity": ["Acme", "Acme", None], "followers": [1.5, 2.0, 3.0]}), src)
    out = tmp_path / "out.jsonl"
    counts = run(Options(input=str(src), output=str(out), bundle=TINY_RELATED_BUNDLE,
                         output_format=Format.JSONL, keep_text=True), spark)
    assert counts == {None: 2, "empty or missing text": 1}
    rows = {r["tweet_id"]: r for r in read_jsonl_dir(out)}
    assert set(rows) == {10, 11, 12}
    assert rows[12]["text"] == "Acme, \"great\"\nday" and rows[12]["followers"] == 3.0
    assert set(rows[10]["scores"]) == {"positive", "neutral", "negative"} and 0 <= rows[10]["related"] <= 1
    assert rows[11] == {"tweet_id": 11, "entity": "Acme", "followers": 2.0, "error": "empty or missing text"}
    assert not list(tmp_path.glob("*.partial-*"))
    with pytest.raises(BulkError, match="exists"):
        run(Options(input=str(src), output=str(out), bundle=TINY_RELATED_BUNDLE, output_format=Format.JSONL), spark)
    run(Options(input=str(src), output=str(out), bundle=TINY_RELATED_BUNDLE, output_format=Format.JSONL,
                overwrite=True), spark)  # replaced: the text is no longer kept, nothing is left beside it
    assert "text" not in read_jsonl_dir(out)[0] and sorted(p.name for p in tmp_path.iterdir()) == ["day.parquet", "out.jsonl"]
    with pytest.raises(BulkError, match=r"absent.parquet: no such file or directory$"):
        run(Options(input=str(tmp_path / "absent.parquet"), output=str(tmp_path / "x"), bundle=TINY_BUNDLE), spark)
    (tmp_path / "notext.jsonl").write_text('{"tweet": "x", "who": "y"}\n')
    with pytest.raises(BulkError, match=r"no 'text' column \(columns: tweet, who\)$"):
        run(Options(input=str(tmp_path / "notext.jsonl"), output=str(tmp_path / "y"), bundle=TINY_BUNDLE), spark)
    # A CSV's first row, which without a header row is a tweet (one word too): only the expected names are shown.
    for name, row in (("noheader.csv", "1,I really love my new phone,Acme\n"), ("oneword.csv", "Acme,secretword\n")):
        (tmp_path / name).write_text(row)
        with pytest.raises(BulkError, match=r"\(columns: \d others \(a name other than entity and text is not shown: "
                                            r"without a header row it is a tweet's\)\)$"):
            run(Options(input=str(tmp_path / name), output=str(tmp_path / "z"), bundle=TINY_BUNDLE), spark)


def test_a_text_over_max_text_chars_is_that_rows_error(spark, tmp_path, monkeypatch):
    """As offline and in the API (413): in CSV such a text is mostly rows merged by an unclosed quote."""
    monkeypatch.setenv("MAX_TEXT_CHARS", "50")
    src = tmp_path / "day.jsonl"
    src.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(["x" * 51, "y" * 50])))
    counts = run(Options(input=str(src), output=str(tmp_path / "out"), bundle=TINY_BUNDLE,
                         output_format=Format.JSONL), spark)
    assert counts == {None: 1, "text longer than 50 characters (MAX_TEXT_CHARS)": 1}
    assert {r["id"]: r.get("error") for r in read_jsonl_dir(tmp_path / "out")} == {
        0: "text longer than 50 characters (MAX_TEXT_CHARS)", 1: None}


def test_a_csv_text_over_the_csv_modules_limit_is_that_rows_error_as_offline(spark, tmp_path):
    """A text of 200,000 characters (over the csv module's default limit, 131,072) failed the whole job; offline it is
    that row's MAX_TEXT_CHARS error, and now here too."""
    (tmp_path / "long.csv").write_text(f"id,text\n1,{'y' * 200_000}\n2,{'z' * 5_000}\n3,Acme is fine\n")
    limit = csv.field_size_limit(131_072)  # the module's default, which the offline command's reader raises for good
    try:
        counts = run(Options(input=str(tmp_path / "long.csv"), output=str(tmp_path / "out"), bundle=TINY_BUNDLE,
                             output_format=Format.JSONL), spark)
    finally:
        csv.field_size_limit(limit)
    assert counts == {None: 1, "text longer than 4000 characters (MAX_TEXT_CHARS)": 2}


def test_an_output_no_folder_can_be_written_at_and_leftovers_beside_it_are_said_before_the_job(spark, tmp_path, capfd):
    """OUTPUT under a file used to fail only when the job wrote, after classifying everything, in Spark's words; a
    killed job's OUTPUT.partial-* (which may hold a _SUCCESS) is named, and left as it is."""
    (tmp_path / "in.jsonl").write_text('{"text": "fine"}\n')
    (tmp_path / "file").write_text("mine\n")
    with pytest.raises(BulkError, match=r"file/out: no folder can be written there \(.*\): give another OUTPUT$"):
        run(Options(input=str(tmp_path / "in.jsonl"), output=str(tmp_path / "file" / "out"), bundle=TINY_BUNDLE), spark)
    (tmp_path / "out.partial-0123abcd").mkdir()
    (tmp_path / "out.partial-0123abcd" / "_SUCCESS").touch()
    capfd.readouterr()
    run(Options(input=str(tmp_path / "in.jsonl"), output=str(tmp_path / "out"), bundle=TINY_BUNDLE), spark)
    assert "note: out.partial-0123abcd beside OUTPUT: left by a job that was killed" in capfd.readouterr().err
    assert (tmp_path / "out.partial-0123abcd" / "_SUCCESS").exists() and (tmp_path / "file").read_text() == "mine\n"
    assert not list(tmp_path.glob(".out.probe-*"))


def test_a_folder_whose_subfolders_spark_would_skip_is_refused(spark, tmp_path):
    """Spark reads a folder's own files or its name=value partition folders': the files of another subfolder, or a
    folder's own beside partition folders, were skipped, silently, and the summary counted the rest as the whole input
    (a folder of 2025/01/... failed in Spark's words, 'Unable to infer schema')."""
    (tmp_path / "in" / "sub").mkdir(parents=True)
    (tmp_path / "in" / "a.jsonl").write_text(json.dumps({"text": "fine"}) + "\n")
    (tmp_path / "in" / "sub" / "b.jsonl").write_text(json.dumps({"text": "also fine"}) + "\n")
    (tmp_path / "in" / "_temporary").mkdir()  # Spark's own, which it skips: not named
    with pytest.raises(BulkError, match=r"in: Spark would skip the files in its subfolders \(sub\): "):
        run(Options(input=str(tmp_path / "in"), output=str(tmp_path / "out"), bundle=TINY_BUNDLE,
                    input_format=Format.JSONL), spark)
    assert not (tmp_path / "out").exists()
    (tmp_path / "days" / "day=1").mkdir(parents=True)  # a partition folder is read
    (tmp_path / "days" / "day=1" / "a.jsonl").write_text(json.dumps({"text": "fine"}) + "\n")
    (tmp_path / "days" / "a.jsonl").write_text(json.dumps({"text": "fine"}) + "\n")  # but not a file beside it
    (tmp_path / "days" / "day=1" / "more").mkdir()  # a subfolder of a partition folder is read, with its values
    (tmp_path / "days" / "day=1" / "more" / "b.jsonl").write_text(json.dumps({"text": "fine too"}) + "\n")
    with pytest.raises(BulkError, match=r"days: Spark would skip its own files \(a.jsonl\) beside its partition "
                                        r"folders \(day=1\): "):
        run(Options(input=str(tmp_path / "days"), output=str(tmp_path / "out"), bundle=TINY_BUNDLE,
                    input_format=Format.JSONL), spark)
    shutil.move(tmp_path / "days" / "a.jsonl", tmp_path / "a.jsonl")
    assert run(Options(input=str(tmp_path / "days"), output=str(tmp_path / "out"), bundle=TINY_BUNDLE,
                       input_format=Format.JSONL, output_format=Format.JSONL), spark) == {None: 2}
    rows = read_jsonl_dir(tmp_path / "out")
    assert [row["day"] for row in rows] == [1, 1] and all(row["label"] in ("positive", "neutral", "negative") for row in rows)


def test_a_write_cut_off_between_its_renames_leaves_one_output(spark, tmp_path):
    """Cut off after the old OUTPUT was moved aside and before the new one took its place, a job used to leave no
    OUTPUT (the old one only as OUTPUT.replaced-*); cut off after the new one's rename, the old one beside it."""
    from bulk.job import _file_system, _tidy

    def paths(name: str):
        return _file_system(spark, str(tmp_path / name))[1]

    for new_in_place in (False, True):
        shutil.rmtree(tmp_path / "out", ignore_errors=True)
        (tmp_path / "out.replaced-0123abcd").mkdir()
        (tmp_path / "out.replaced-0123abcd" / "old").touch()
        (tmp_path / ("out" if new_in_place else "out.partial-0123abcd")).mkdir()
        (tmp_path / ("out" if new_in_place else "out.partial-0123abcd") / "new").touch()
        fs, final = _file_system(spark, str(tmp_path / "out"))
        partial, replaced = paths("out.partial-0123abcd"), paths("out.replaced-0123abcd")
        _tidy(spark, fs, final, partial, replaced, tuple(p.toString() for p in (final, partial, replaced)))
        assert [p.name for p in tmp_path.iterdir()] == ["out"]
        assert [p.name for p in (tmp_path / "out").iterdir()] == ["new" if new_in_place else "old"]


def test_an_output_named_with_glob_characters_is_written_and_counted(spark, tmp_path):
    """The output is counted by reading it back: Spark read OUTPUT[1]'s or OUTPUT{a,b}'s partial folder as a glob that
    matched nothing, and the job failed after classifying everything ('Path does not exist'), its output removed."""
    (tmp_path / "in.jsonl").write_text(json.dumps({"text": "fine"}) + "\n" + json.dumps({"text": " "}) + "\n")
    for name, fmt in (("out[1]", Format.PARQUET), ("out{a,b}", Format.JSONL)):
        counts = run(Options(input=str(tmp_path / "in.jsonl"), output=str(tmp_path / name), bundle=TINY_BUNDLE,
                             output_format=fmt), spark)
        assert counts == {None: 1, "empty or missing text": 1} and (tmp_path / name / "_SUCCESS").exists()
    assert not list(tmp_path.glob("out*.partial-*"))


def test_more_threads_than_a_local_master_has_cores_is_one_line_before_spark_starts(capsys, monkeypatch):
    from bulk.__main__ import main

    monkeypatch.setattr(signal, "signal", lambda signum, handler: None)  # the command's SIGTERM handler: not pytest's
    for args, master, cores in [(["--master", "local[2]"], "local[2]", 2),
                                (["--conf", "spark.master=local[1]", "--threads", "1", "--conf", "spark.task.cpus=2"],
                                 "local[1]", 1)]:
        cpus = 2 if "spark.task.cpus=2" in args else 3
        assert main(["classify", "in.jsonl", "out", "--bundle", str(TINY_BUNDLE), "--threads", "3", *args]) == 2
        assert capsys.readouterr().err.strip().splitlines() == [
            f"error: --threads {cpus} takes {cpus} cores per task, and {master} has {cores}: give fewer threads or more "
            "cores"]


def test_a_failed_job_is_one_line_last_with_no_tweet_and_no_java_trace(tmp_path):
    """An unclosed quote that closes on a later row fails the job (as offline refuses the file) instead of merging
    the rows between; Spark's task-failure logs, which print the record, are off; a missing input is named before
    Spark's reader logs a stack trace."""
    rows = [f'{i},"tweet {i} is fine",Acme' for i in range(40)]
    rows[20] = '20,"tweet 20 left open,Acme'
    (tmp_path / "day.csv").write_text("id,text,entity\n" + "\n".join(rows) + "\n")
    for name, expected in (("day.csv", "Encountered error while reading file"), ("absent.jsonl", None)):
        result = bulk_command(tmp_path, name, "out", "--bundle", str(TINY_BUNDLE), "--master", LOCAL, *QUIET)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2, result.stderr[-3000:]
        if expected:
            assert lines[-1].startswith("error: Spark: ") and expected in lines[-1], result.stderr[-3000:]
            assert lines[-1].endswith(f"(an unclosed quote, or a field over {FIELD_CHARS} characters?)")
        else:
            assert lines[-1] == "error: absent.jsonl: no such file or directory", result.stderr[-3000:]
        assert "tweet 2" not in result.stderr and not [x for x in lines if x.strip().startswith("at ")], result.stderr
        assert not (tmp_path / "out").exists() and not list(tmp_path.glob("out.partial-*"))


def test_a_process_whose_job_failed_while_it_wrote_runs_the_next_job(tmp_path):
    """A job that failed while it wrote (here a CSV quote that closes on a later row) ends the JVM PySpark started, so
    that a cancelled task writes nothing more: the next job in the same process (a notebook, a script running
    several) started its session on that JVM's gateway, and failed with "Connection refused"."""
    rows = [f'{i},"tweet {i} is fine",Acme' for i in range(40)]
    rows[20] = '20,"tweet 20 left open,Acme'
    (tmp_path / "day.csv").write_text("id,text,entity\n" + "\n".join(rows) + "\n")
    (tmp_path / "good.jsonl").write_text("".join(json.dumps({"text": f"tweet {i} about Acme"}) + "\n" for i in range(3)))
    script = f"""import sys; sys.path.insert(0, {str(ROOT)!r})
from pathlib import Path
from bulk.job import BulkError, Options, run
conf = (("spark.ui.enabled", "false"),)
try:
    run(Options(input="day.csv", output="out1", bundle=Path({str(TINY_BUNDLE)!r}), master="local[1]", conf=conf))
except BulkError as exc:
    print("first:", exc)
print("second:", run(Options(input="good.jsonl", output="out2", bundle=Path({str(TINY_BUNDLE)!r}),
                             master="local[1]", conf=conf)))
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "first: Spark: " in result.stdout and "second: {None: 3}" in result.stdout, result.stdout
    assert not list(tmp_path.glob("out1*")) and (tmp_path / "out2" / "_SUCCESS").exists()


def test_missing_or_tampered_bundle_fails_at_once_in_one_line(tmp_path):
    src = tmp_path / "day.jsonl"
    src.write_text(json.dumps({"text": "hello"}) + "\n")
    tampered = tmp_path / "tampered"
    shutil.copytree(TINY_BUNDLE, tampered)
    with (tampered / "vocab.txt").open("a") as fh:
        fh.write("extra\n")
    for bundle, reason in ((tmp_path / "absent", "not a directory"), (tampered, "vocab.txt is")):
        result = bulk_command(tmp_path, str(src), str(tmp_path / "out"), "--bundle", str(bundle), "--master", LOCAL)
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert lines[-1].startswith("error: bundle ") and reason in lines[-1], result.stderr
        assert "Traceback" not in result.stderr and "Spark" not in result.stderr  # before Spark started
        assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args, message", [
    (["--master", "bogus://x"], "argument --master: expected local, local[N], local[*], yarn, spark://HOST:PORT or "
                                "k8s://HOST:PORT, got 'bogus://x'"),
    (["--format", "xml"], "argument --format: expected one of jsonl, csv, parquet, got 'xml'"),
    (["--output-format", "csv"], "argument --output-format: expected one of parquet, jsonl, got 'csv'"),
    (["--partitions", "abc"], "argument --partitions: expected a whole number, got 'abc'"),
    (["--partitions", "10001"], "argument --partitions: must be from 1 to 10000, got 10001"),
    (["--threads", "100000"], "argument --threads: must be from 1 to 256, got 100000"),
    (["--master", "local[0]"], "got 'local[0]'"),
    (["--master", "spark://x:notaport"], "got 'spark://x:notaport'"),
    (["--master", "spark://x:65536"], "got 'spark://x:65536'"),
    (["--master", "spark://::1:7077"], "got 'spark://::1:7077'"),  # an IPv6 address goes in brackets
])
def test_bad_options_are_one_line_before_spark_starts(capsys, args, message):
    from bulk.__main__ import main

    with pytest.raises(SystemExit) as exit_:
        main(["classify", "in.jsonl", "out", *args])
    assert exit_.value.code == 2 and capsys.readouterr().err.strip().splitlines()[-1].endswith(message)


def test_a_spark_master_that_takes_no_connection_is_one_line_at_once(tmp_path):
    """Not a minute of Spark's retries and Java's traces: the job checks a spark:// master's address first."""
    (tmp_path / "in.jsonl").write_text('{"text": "fine"}\n')
    for family, host, address in ((socket.AF_INET, "127.0.0.1", "127.0.0.1"), (socket.AF_INET6, "::1", "[::1]")):
        with socket.socket(family) as unused:  # bound, not listening: a connection is refused, and nothing takes the port
            try:
                unused.bind((host, 0))
            except OSError:  # a machine without IPv6
                assert family == socket.AF_INET6
                continue
            port = unused.getsockname()[1]
            result = bulk_command(tmp_path, "in.jsonl", "out", "--bundle", str(TINY_BUNDLE), "--master",
                                  f"spark://{address}:{port}")
        assert result.returncode == 2 and result.stderr.strip().splitlines()[-1] == (
            f"error: Spark master spark://{address}:{port}: no connection ({address}:{port}: Connection refused): is "
            "it started, and is this its address?"), result.stderr
        assert "Traceback" not in result.stderr and "Spark 4" not in result.stderr and not (tmp_path / "out").exists()


def test_a_java_older_than_spark_takes_is_one_line_before_spark_starts(tmp_path):
    """Spark 4 on Java 11 says only that its gateway exited: the job names the Java and what it needs. No Java 11 is
    installed here: a script in its place prints the first line Java 11's `java -version` prints."""
    (tmp_path / "jdk-11" / "bin").mkdir(parents=True)
    java = tmp_path / "jdk-11" / "bin" / "java"
    java.write_text("#!/bin/sh\necho 'openjdk version \"11.0.21\" 2023-10-17' >&2\n")
    java.chmod(0o755)
    (tmp_path / "in.jsonl").write_text('{"text": "fine"}\n')
    result = bulk_command(tmp_path, "in.jsonl", "out", "--bundle", str(TINY_BUNDLE), "--master", LOCAL,
                          JAVA_HOME=str(tmp_path / "jdk-11"))
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        f"error: Spark 4 needs Java 17 or later, and {java} is Java 11: set JAVA_HOME to a Java 17 (Debian's "
        "openjdk-17-jre-headless)"], result.stderr
    assert not (tmp_path / "out").exists()


def test_columns_named_with_dots_or_backticks_are_kept(spark, tmp_path):
    """Every column but text is written, whatever its name: one with a dot (user.screen_name, as flattened tweets
    name them) or a backtick stopped the job in Spark's words ('cannot be resolved')."""
    (tmp_path / "in.csv").write_text("user.screen_name,text,a`b,entity\nsomeone,Acme is great,x,Acme\n")
    (tmp_path / "in.jsonl").write_text(json.dumps({"user.id": 7, "text": "fine", "c`d": "y"}) + "\n")
    for name, expected in (("in.csv", {"user.screen_name": "someone", "a`b": "x", "entity": "Acme"}),
                           ("in.jsonl", {"user.id": 7, "c`d": "y"})):
        out = tmp_path / f"out-{name}"
        assert run(Options(input=str(tmp_path / name), output=str(out), bundle=TINY_BUNDLE,
                           output_format=Format.JSONL), spark) == {None: 1}
        (row,) = read_jsonl_dir(out)
        assert {k: row[k] for k in expected} == expected and row["label"] in ("positive", "neutral", "negative")


def test_a_name_given_twice_or_none_is_said_so(spark, tmp_path):
    """A CSV header naming a column other than text or entity twice, or none (a spreadsheet's empty last columns):
    Spark renamed them and then blamed the file's first row as another file's header; a JSON object giving a key
    twice: Spark stopped the job with 'choose another name'. One line each that says what is wrong, and no output."""
    (tmp_path / "twice.csv").write_text("text,id,id\nfine,1,2\n")
    (tmp_path / "unnamed.csv").write_text("text,entity,,\nfine,Acme,,\n")
    (tmp_path / "twice.jsonl").write_text('{"text": "fine"}\n{"text": "ok", "id": 1, "id": 2}\n')
    for name, message in (
            ("twice.csv", f"{(tmp_path / 'twice.csv').as_uri()}: its header row names a column more than once: give "
                          "each column once"),
            ("unnamed.csv", f"{(tmp_path / 'unnamed.csv').as_uri()}: its header row has a column without a name (a "
                            "spreadsheet's empty last columns?): name each column or remove it"),
            ("twice.jsonl", "the input names the column `id` twice (a key given twice in a JSON object, or a column in "
                            "a file), which Spark cannot read: give each once")):
        with pytest.raises(BulkError) as error:
            run(Options(input=str(tmp_path / name), output=str(tmp_path / "out"), bundle=TINY_BUNDLE,
                        output_format=Format.JSONL), spark)
        assert str(error.value) == f"Spark: {message}" and not (tmp_path / "out").exists()


def test_a_csv_may_start_with_a_byte_order_mark(spark, tmp_path):
    """Excel's CSV UTF-8 does; Spark keeps the mark in the first column's name, the job takes it off."""
    (tmp_path / "excel.csv").write_text("\ufefftext,entity\ngreat phone,Acme\n", encoding="utf-8")
    counts = run(Options(input=str(tmp_path / "excel.csv"), output=str(tmp_path / "out"), bundle=TINY_BUNDLE,
                         output_format=Format.JSONL), spark)
    assert counts == {None: 1} and read_jsonl_dir(tmp_path / "out")[0]["entity"] == "Acme"


def test_an_output_inside_the_input_or_the_bundle_through_a_symlink_is_refused(spark, tmp_path):
    """OUTPUT is compared with the input and the bundle's folder with symbolic links resolved: written through a link,
    it went into the input's folder (or the bundle's), which the command refuses when named directly."""
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "day.jsonl").write_text(json.dumps({"text": "fine"}) + "\n")
    shutil.copytree(TINY_BUNDLE, tmp_path / "bundle")
    (tmp_path / "in-link").symlink_to(tmp_path / "in")
    (tmp_path / "bundle-link").symlink_to(tmp_path / "bundle")
    for source, output, what in (("in", "in-link/out", "the input"), ("in-link", "in/out", "the input"),
                                 ("in", "bundle-link/out", "the bundle's folder")):
        opts = Options(input=str(tmp_path / source), output=str(tmp_path / output), input_format=Format.JSONL)
        with pytest.raises(BulkError, match=re.escape(f"{tmp_path / output} is {what}, inside it or around it")):
            check_paths(spark, opts, tmp_path / "bundle")
    check_paths(spark, Options(input=str(tmp_path / "in-link"), output=str(tmp_path / "out")), tmp_path / "bundle")


def test_overwrite_replaces_an_earlier_output_only(spark, tmp_path):
    """--overwrite never takes the bundle (its folder, one inside or around it, a space in its path too), the input
    (nor a folder inside or around it), or a user's file."""
    bundle, src, user = tmp_path / "my bundle", tmp_path / "in" / "day.jsonl", tmp_path / "notes.txt"
    shutil.copytree(TINY_BUNDLE, bundle)
    src.parent.mkdir()
    src.write_text(json.dumps({"id": 1, "text": "fine"}) + "\n")
    user.write_text("a user's notes")

    def job(output: Path, source: Path = src) -> dict:
        return run(Options(input=str(source), output=str(output), bundle=bundle, overwrite=True,
                           input_format=Format.JSONL, output_format=Format.JSONL), spark)

    for output, message in [(bundle, "is the bundle's folder, inside it or around it"),
                            (bundle / "labels", "is the bundle's folder, inside it or around it"),
                            (tmp_path, "is the bundle's folder, inside it or around it"),
                            (src.parent, "is the input, inside it or around it"),
                            (src.parent / "labels", "is the input, inside it or around it"),
                            (user, "is not an earlier job's output (no _SUCCESS in it)")]:
        with pytest.raises(BulkError, match=re.escape(f"{output} {message}")):
            job(output, src.parent)
    assert Bundle.load(bundle).name and user.read_text() == "a user's notes" and src.exists()
    assert job(tmp_path / "out") == {None: 1} and job(tmp_path / "out") == {None: 1}


def test_an_output_another_job_wrote_meanwhile_is_left_as_it_is(spark, tmp_path):
    """OUTPUT is checked when the job starts, and again before its output is renamed into place: one that appeared while
    the job ran (another job's to the same OUTPUT) is neither replaced nor given this one's files inside it."""
    src = tmp_path / "day.jsonl"
    src.write_text(json.dumps({"id": 1, "text": "fine"}) + "\n")
    bundle = verify(TINY_BUNDLE)
    task = worker.Task(archive=ship(spark, bundle), labels=bundle.labels, has_related=False, threads=1, bucket=8,
                       max_batch=16, max_chars=4000, dropped=("text",))
    for overwrite in (False, True):
        out = tmp_path / f"labels-{overwrite}"
        opts = Options(input=str(src), output=str(out), bundle=TINY_BUNDLE, output_format=Format.JSONL,
                       overwrite=overwrite)
        check_paths(spark, opts, bundle.path)
        out.mkdir()
        (out / "part-00000.json").write_text('{"another": "job"}\n')  # no _SUCCESS: not replaced even with --overwrite
        frame = prepare(Format.JSONL.read(spark, str(src)), None, 1)
        why = "is not an earlier job's output (no _SUCCESS in it), which is all that --overwrite replaces" if overwrite \
            else "exists (pass --overwrite to replace it)"
        with pytest.raises(BulkError, match=re.escape(f"{out} appeared while this job ran and {why}: it is left as it "
                                                      "is, and this job's output is not kept")):
            write(spark, classify(frame, task), opts)
        assert [p.name for p in out.iterdir()] == ["part-00000.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["day.jsonl", "labels-False", "labels-True"]


def test_csv_read_errors_quote_no_record_nor_header_row(spark, tmp_path, capfd):
    """Spark quotes the record it could not read (a field over the limit) and a file's header row (in a file without
    one, a tweet; Spark used to drop it silently): one line without either, the file named."""
    (tmp_path / "big.csv").write_text(f'id,text,entity\n1,"SECRET tweet {"y" * FIELD_CHARS}",Acme\n')
    folder, fewer = tmp_path / "day", tmp_path / "fewer"
    for part in (folder, fewer):
        part.mkdir()
        (part / "a.csv").write_text("id,text,entity\n1,Acme is fine,Acme\n")
    (folder / "b.csv").write_text("2,I SECRETLY hate Acme,Acme\n3,other,Acme\n")
    (fewer / "b.csv").write_text("id,text\n2,I SECRETLY hate Acme\n")  # was said to be an unclosed quote
    for source, message in [(tmp_path / "big.csv", "Spark: a CSV record could not be read (an unclosed quote, or a "
                                                    f"field over {FIELD_CHARS} characters?)"),
                            (folder, f"Spark: {(folder / 'b.csv').as_uri()}: its first row is not the header row of "
                                     "the first file (every CSV file of the input needs the same one, its columns in "
                                     "the same order)"),
                            (fewer, f"Spark: {(fewer / 'b.csv').as_uri()}: its first row has another number of "
                                    "columns than the first file's header row (every CSV file of the input needs the same "
                                    "one)")]:
        with pytest.raises(BulkError) as refused:
            run(Options(input=str(source), output=str(tmp_path / "out"), bundle=TINY_BUNDLE, input_format=Format.CSV),
                spark)
        assert str(refused.value).replace("file:///", "file:/") == message.replace("file:///", "file:/")
        assert "SECRET" not in "".join(capfd.readouterr()) and not (tmp_path / "out").exists()


def test_a_quote_left_open_to_the_end_of_a_csv_file_is_refused(spark, tmp_path):
    """Spark's reader closes it at the end of the file: the rows after it were one tweet, the job said nothing (offline:
    'unexpected end of data'). One line naming the file, and no output; a quote inside an unquoted field and a quoted
    field closed at the start of a line are read as before, in a file of several parts."""
    good = 'id,text,entity\n1,a 5" screen,Acme\n2,"ends in a newline\n",Acme\n'
    (tmp_path / "good.csv").write_text(good)
    spark.conf.set("spark.sql.files.maxPartitionBytes", "16")
    try:
        assert run(Options(input=str(tmp_path / "good.csv"), output=str(tmp_path / "out"), bundle=TINY_BUNDLE,
                           output_format=Format.JSONL), spark) == {None: 2}
        for name, tail in (("text", '3,"left open,Acme\n4,fine,Acme\n'), ("entity", '3,left open,"Acme\n4,fine,Acme')):
            (tmp_path / name).mkdir()
            (tmp_path / name / "a.csv").write_text(good)
            (tmp_path / name / "b.csv").write_text(good + tail)
            with pytest.raises(BulkError) as refused:
                run(Options(input=str(tmp_path / name), output=str(tmp_path / f"out-{name}"), bundle=TINY_BUNDLE,
                            input_format=Format.CSV), spark)
            assert str(refused.value) == f"{(tmp_path / name / 'b.csv').as_uri().replace('file:///', 'file:/')}: a " \
                "quoted field is still open at the end of the file (an unclosed quote: the rows after it would be read " \
                "as one field)"
            assert not (tmp_path / f"out-{name}").exists()
    finally:
        spark.conf.unset("spark.sql.files.maxPartitionBytes")


def test_columns_told_apart_by_case_a_repeated_one_refused_and_parquet_files_merged(spark, tmp_path):
    """'ID' beside 'id' is a column of its own and 'Label' is written as input_Label (Spark, case-insensitive by
    default, stopped the job); a CSV header naming text or entity twice is refused as offline refuses it (Spark renamed
    both and ran without them); Parquet files of a folder with other columns keep them all."""
    def job(source: Path, fmt: Format) -> list[dict]:
        out = tmp_path / f"out-{source.name}"
        run(Options(input=str(source), output=str(out), bundle=TINY_RELATED_BUNDLE, input_format=fmt,
                    output_format=Format.JSONL), spark)
        return sorted(read_jsonl_dir(out), key=lambda r: str(r.get("id")))

    (tmp_path / "case.csv").write_text("id,text,entity,Label,_corrupt_record\n1,Acme is great,Acme,positive,x\n")
    (row,) = job(tmp_path / "case.csv", Format.CSV)  # Spark's default name for a bad line's column is data here
    assert row["input_Label"] == "positive" and row["label"] in ("positive", "neutral", "negative") and "related" in row
    assert row["_corrupt_record"] == "x" and "error" not in row
    (tmp_path / "case.jsonl").write_text('{"id": 1, "text": "fine"}\n{"id": 2, "ID": "x", "text": "ok"}\n')
    assert [(r["id"], r.get("ID"), "label" in r) for r in job(tmp_path / "case.jsonl", Format.JSONL)] == [
        (1, None, True), (2, "x", True)]
    for header, twice in (("id,text,entity,entity", "entity"), ("id,text,text", "text")):
        (tmp_path / "twice.csv").write_text(f"{header}\n1,a,b{',c' * (header.count(',') - 2)}\n")
        with pytest.raises(BulkError, match=f"^column {twice} appears more than once in the header: give each column "
                                            "once$"):
            job(tmp_path / "twice.csv", Format.CSV)
    folder = tmp_path / "lake"
    folder.mkdir()
    pq.write_table(pa.table({"id": [1], "text": ["fine"]}), folder / "a.parquet")
    pq.write_table(pa.table({"id": [2], "text": ["Acme recalls phones"], "entity": ["Acme"]}), folder / "b.parquet")
    rows = job(folder, Format.PARQUET)
    assert [(r["id"], r.get("entity"), "related" in r) for r in rows] == [(1, None, False), (2, "Acme", True)]
    assert spark.conf.get("spark.sql.caseSensitive") == "false"  # the caller's session as it was


def long_job(tmp_path: Path, **popen) -> subprocess.Popen:
    """The real command started on 60,000 tweets to OUTPUT ``out`` in ``tmp_path``, its standard error piped."""
    src = tmp_path / "day.jsonl"
    src.write_text("".join(json.dumps({"id": i, "text": f"tweet number {i} about Acme"}) + "\n" for i in range(60_000)))
    boot = f"import sys; sys.path.insert(0, {str(ROOT)!r}); from bulk.__main__ import main; sys.exit(main())"
    return subprocess.Popen([sys.executable, "-c", boot, "classify", str(src), "out", "--bundle", str(TINY_BUNDLE),
                             "--master", LOCAL, *QUIET], cwd=tmp_path, stderr=subprocess.PIPE, text=True, **popen)


@pytest.mark.parametrize("group, signum", [(False, signal.SIGTERM), (True, signal.SIGINT), (True, signal.SIGTERM)],
                         ids=["sigterm", "ctrl-c", "sigterm-group"])
def test_stopped_mid_write_leaves_no_partial_output(tmp_path, group, signum):
    """A job stopped by SIGTERM (a scheduler), by Ctrl-C at a terminal (SIGINT to the job and its JVM), or by SIGTERM
    to the job and its JVM (systemd's default, `timeout`; it used to end in tracebacks, its JVM gone): 'interrupted',
    exit 130, no OUTPUT nor partial, and no traceback (py4j logged its interrupted call's)."""
    job = long_job(tmp_path, start_new_session=group)
    stderr = interrupted_when(job, lambda: list(tmp_path.glob("out.partial-*")),
                              lambda: os.killpg(job.pid, signum) if group else job.send_signal(signum))
    assert "Traceback" not in stderr, stderr[-3000:]
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob("out.*"))


def test_stopped_while_a_task_writes_its_part_file_leaves_no_partial_output(tmp_path):
    """SIGTERM to the command alone while a task writes: the cancelled task ran on after the partial output was removed
    and wrote it again (OUTPUT.partial-* with a part file of results was left, each time), until its JVM exited."""
    job = long_job(tmp_path)
    interrupted_when(job, lambda: list(tmp_path.glob("out.partial-*/_temporary/*/_temporary/*/part-*")),
                     lambda: job.send_signal(signal.SIGTERM))
    time.sleep(3)  # what a JVM left running would still write
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob("out.*"))


def test_a_glob_input_logs_no_stack_trace(tmp_path):
    """Spark's reader looks for a streaming sink's metadata at the glob's literal path and logs a Java stack trace."""
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "day.jsonl").write_text(json.dumps({"text": "fine"}) + "\n")
    result = bulk_command(tmp_path, "in/*.jsonl", "out", "--bundle", str(TINY_BUNDLE), "--master", LOCAL, *QUIET)
    assert result.returncode == 0 and result.stderr.strip().splitlines()[-1] == "classified 1 tweets, 0 errors; wrote out"
    assert not [line for line in result.stderr.splitlines() if line.strip().startswith("at ")], result.stderr[-3000:]
