"""`python -m app classify FILE`: CSV or JSONL in, JSONL out, in order, bad rows reported, no HTTP."""

import gzip
import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import tempfile
import time
from pathlib import Path

from tests.conftest import (
    EDGE_PYTHON,
    ROOT,
    TINY_BUNDLE,
    TINY_RELATED_BUNDLE,
    app_command,
    interrupted_when,
    kill_tree,
    splitting_threshold,
    with_manifest,
)


def run(*args, bundle=TINY_BUNDLE):
    return app_command("classify", "--bundle", str(bundle), *args)


def test_csv_to_jsonl_file(tmp_path):
    src = tmp_path / "day.csv"
    src.write_text('id,text,entity\n1,"Acme recalls phones, again",Acme\n2,,Acme\n3,great day,\n', encoding="utf-8")
    out = tmp_path / "out.jsonl"
    result = run(str(src), "--out", str(out))
    assert result.returncode == 0, result.stderr
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["line"] for x in lines] == [1, 2, 3]
    assert lines[0]["id"] == "1" and lines[0]["label"] in ("positive", "neutral", "negative")
    assert lines[1] == {"line": 2, "id": "2", "entity": "Acme", "error": "empty or missing text"}  # its fields kept
    assert "text" not in lines[0] and "classified 2 tweets, 1 errors" in result.stderr
    assert not list(tmp_path.glob(".*partial"))


def test_jsonl_to_stdout(tmp_path):
    src = tmp_path / "day.jsonl"
    src.write_text(json.dumps({"text": "bad service", "entity": "Globex Bank"}) + "\nnot json\n"
                   + json.dumps({"text": "ok"}) + "\n" + json.dumps({"text": "\u200b \u2066"}) + "\n", encoding="utf-8")
    result = run(str(src), "--no-progress")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(x) for x in result.stdout.splitlines()]
    assert [("label" in x, x["line"]) for x in lines] == [(True, 1), (False, 2), (True, 3), (False, 4)]
    assert lines[3] == {"line": 4, "error": "empty or missing text"}  # only invisible characters
    assert not any({"related", "about"} & set(x) for x in lines)


def test_related_and_about_written_where_the_bundle_has_that_head(tmp_path):
    """`about` is the verdict at the bundle's related_threshold (here one between the tweets' probabilities)."""
    texts = ["acme of perfection", "Acme recalls phones", "lunch at acme cafe", "I love Acme"]
    src = tmp_path / "day.jsonl"
    src.write_text("".join(json.dumps({"text": t, "entity": "Acme"}) + "\n" for t in texts), encoding="utf-8")
    plain = run(str(src), "--no-progress", bundle=TINY_RELATED_BUNDLE).stdout
    related = [json.loads(x)["related"] for x in plain.splitlines()]
    threshold = splitting_threshold(related)
    bundle = with_manifest(TINY_RELATED_BUNDLE, tmp_path / "b", related_threshold=threshold)
    result = run(str(src), "--no-progress", bundle=bundle)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(x) for x in result.stdout.splitlines()]
    assert [x["related"] for x in lines] == related and all(x["label"] in x["scores"] for x in lines)
    assert [x["about"] for x in lines] == [p >= threshold for p in related] and {x["about"] for x in lines} == {True, False}


def test_unreadable_inputs_give_a_clear_error(tmp_path):
    (tmp_path / "bad.csv").write_text("tweet,who\nx,y\n")
    result = run(str(tmp_path / "bad.csv"))
    assert result.returncode == 2 and "needs a header row with a 'text' column" in result.stderr
    for path, line in ((tmp_path / "absent.csv", f"error: {tmp_path / 'absent.csv'}: No such file or directory"),
                       (tmp_path, f"error: {tmp_path} is a folder: give a CSV or JSONL file")):
        result = run(str(path))  # refused before the bundle is loaded: its one line alone
        assert result.returncode == 2 and result.stderr.splitlines() == [line], result.stderr
    (tmp_path / "unclosed.csv").write_text('text\nfine\n"an unclosed quote' + "x" * 200_000 + "\n")
    result = run(str(tmp_path / "unclosed.csv"), "--out", str(tmp_path / "out.jsonl"))
    assert result.returncode == 2 and "unclosed.csv: unexpected end of data by file line 3" in result.stderr
    assert "Traceback" not in result.stderr and not list(tmp_path.glob("*out.jsonl*"))
    for name, content in (("day.csv", gzip.compress(b"text\nfine\n")), ("day.jsonl", '{"text": "fine"}'.encode("utf-16"))):
        (tmp_path / name).write_bytes(content)  # a compressed file, UTF-16 text: not blamed on a header or a quote
        result = run(str(tmp_path / name))
        assert result.returncode == 2 and f"{name}: not a text file: it holds NUL bytes" in result.stderr, result.stderr


def test_a_pipe_is_read_whole(tmp_path):
    """Input from a pipe (``cat day.csv | ... /dev/stdin``) is read once: the check for a binary file takes nothing."""
    (tmp_path / "day.csv").write_text("id,text,entity\n" + "".join(f"{i},tweet {i} about Acme,Acme\n" for i in range(1000)))
    command = f"cat {shlex.quote(str(tmp_path / 'day.csv'))} | {shlex.quote(EDGE_PYTHON)} -m app classify --bundle " \
              f"{shlex.quote(str(TINY_BUNDLE))} --no-progress /dev/stdin"
    result = subprocess.run(command, shell=True, cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [x["id"] for x in lines] == [str(i) for i in range(1000)] and all("label" in x for x in lines)


def test_an_entity_that_is_not_a_string_is_that_lines_error(tmp_path):
    src = tmp_path / "day.jsonl"
    src.write_text("".join(json.dumps({"text": "bad service", "entity": e}) + "\n" for e in (5, ["Acme"], "Acme", None)))
    result = run(str(src), "--no-progress", bundle=TINY_RELATED_BUNDLE)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(x) for x in result.stdout.splitlines()]
    assert lines[:2] == [{"line": 1, "entity": 5, "error": "entity is not a string"},
                         {"line": 2, "entity": ["Acme"], "error": "entity is not a string"}]
    assert [("label" in x) for x in lines[2:]] == [True, True]


def test_offline_mode_reads_no_server_settings(tmp_path):
    """A bad PORT, WORKERS or token file (server settings) does not break offline classification."""
    import os

    src = tmp_path / "day.csv"
    src.write_text("text\ngreat day\n", encoding="utf-8")
    env = {**os.environ, "PORT": "not-a-port", "WORKERS": "many", "AUTH_TOKEN_FILE": str(tmp_path / "absent")}
    result = app_command("classify", "--bundle", str(TINY_BUNDLE), "--no-progress", str(src), env=env)
    assert result.returncode == 0, result.stderr
    env["TFLITE_THREADS"] = "zero"  # a setting offline mode does use is still checked
    result = app_command("classify", str(src), env=env)
    assert result.returncode == 2 and result.stderr.strip() == "error: TFLITE_THREADS must be an integer, got 'zero'"


def test_verify_a_bundle(tiny_bundle_copy):
    ok = app_command("verify", str(tiny_bundle_copy))
    assert ok.returncode == 0 and "loads and runs" in ok.stdout, ok.stderr
    model = tiny_bundle_copy / "model.tflite"
    model.write_bytes(model.read_bytes()[:-4] + b"\x00\x00\x00\x00")
    bad = app_command("verify", str(tiny_bundle_copy))
    assert bad.returncode == 2 and "sha256" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    flag = app_command("verify")
    assert flag.returncode == 2 and "Traceback" not in flag.stderr


def test_a_failed_run_leaves_no_partial_output(tmp_path):
    out = tmp_path / "labels.jsonl"
    result = run(str(tmp_path / "absent.csv"), "--out", str(out))
    assert result.returncode == 2 and not out.exists() and not list(tmp_path.glob(".*partial"))


def test_two_runs_writing_one_output_do_not_mix_their_lines(tmp_path):
    """The first run waits on a pipe for its input while a second writes the same --out whole: the first then
    finishes, and the file holds its lines alone."""
    fifo, other = tmp_path / "slow.jsonl", tmp_path / "fast.jsonl"
    os.mkfifo(fifo)
    other.write_text("".join(json.dumps({"text": f"tweet {i}", "n": i}) + "\n" for i in range(50)), encoding="utf-8")
    out = tmp_path / "labels.jsonl"
    first = subprocess.Popen([EDGE_PYTHON, "-m", "app", "classify", "--bundle", str(TINY_BUNDLE), str(fifo), "--out",
                              str(out), "--no-progress"], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not list(tmp_path.glob(".labels.jsonl*partial")) and time.monotonic() < deadline:  # it waits on the pipe
            time.sleep(0.05)
        second = run(str(other), "--out", str(out), "--no-progress")
        assert second.returncode == 0, second.stderr
    finally:  # the first run's input, whatever happened (it would otherwise wait on the pipe for ever), once it reads
        deadline = time.monotonic() + 60
        while first.poll() is None and time.monotonic() < deadline:
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)  # ENXIO while nothing reads the pipe
            except OSError:
                time.sleep(0.05)
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as pipe:
                pipe.write(json.dumps({"text": "the slow one", "n": "slow"}) + "\n")
            break
    try:
        assert first.wait(timeout=60) == 0, first.stderr.read()
    except subprocess.TimeoutExpired:
        kill_tree(first)
        raise
    assert [json.loads(x)["n"] for x in out.read_text().splitlines()] == ["slow"]
    assert not list(tmp_path.glob(".*partial"))


def test_a_run_stopped_by_sigterm_leaves_no_partial_file(tmp_path):
    """SIGTERM (timeout, systemd, a scheduler) is Ctrl-C: 'interrupted', exit 130, --out as it was; it used to kill
    the run, its .labels.jsonl.PID.partial (the results so far) left beside --out under a name no later run reuses."""
    fifo = tmp_path / "slow.jsonl"
    os.mkfifo(fifo)
    out = tmp_path / "labels.jsonl"
    job = subprocess.Popen([EDGE_PYTHON, "-m", "app", "classify", "--bundle", str(TINY_BUNDLE), str(fifo), "--out",
                            str(out), "--no-progress"], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    # once the model is loaded and the partial file open, waiting on the pipe
    interrupted_when(job, lambda: list(tmp_path.glob(".labels.jsonl*partial")), job.terminate, wait=60)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["slow.jsonl"]


def test_an_output_folder_that_does_not_exist_is_named(tmp_path):
    (tmp_path / "day.csv").write_text("text\nhello\n", encoding="utf-8")
    out = tmp_path / "nowhere" / "labels.jsonl"
    result = run(str(tmp_path / "day.csv"), "--out", str(out))
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {out}: folder {out.parent} does not exist"


def test_input_fields_named_like_an_output_are_kept_renamed(tmp_path):
    src = tmp_path / "gold.jsonl"
    src.write_text(json.dumps({"text": "great phone", "entity": "Acme", "label": "gold-neutral", "related": "yes",
                               "_error": "a field of the user's"}) + "\n", encoding="utf-8")
    result = run(str(src), "--no-progress")
    (line,) = [json.loads(x) for x in result.stdout.splitlines()]
    assert line["input_label"] == "gold-neutral" and line["input_related"] == "yes"
    assert line["_error"] == "a field of the user's" and "error" not in line  # a field, not the reader's mark
    assert line["label"] in ("positive", "neutral", "negative")


def test_no_tflite_runtime_is_one_line():
    """Where neither LiteRT nor tflite-runtime can be imported, `python -m app verify` says so in one line, naming
    both (the edge interpreter, each runtime's package blocked from import as an absent one would be)."""
    blocked = "import runpy, sys; sys.modules.update(ai_edge_litert=None, tflite_runtime=None); " \
              "sys.argv = ['app', 'verify', sys.argv[1]]; runpy.run_module('app', run_name='__main__')"
    result = subprocess.run([EDGE_PYTHON, "-c", blocked, str(TINY_BUNDLE)], cwd=ROOT, capture_output=True, text=True)
    (line,) = result.stderr.splitlines()
    assert result.returncode == 2 and re.fullmatch(r"error: no TFLite runtime installed \(ai-edge-litert: .*"
                                                   r"ai_edge_litert.*; tflite-runtime: .*tflite_runtime.*\)", line), line


def test_an_os_error_is_one_line():
    """A system error names its file and reason; one raised with a message only (as transformers raises) gives
    the message's first line, not 'None'."""
    from app.errors import os_error_line

    assert os_error_line(FileNotFoundError(2, "No such file or directory", "x.csv")) == "x.csv: No such file or directory"
    assert os_error_line(OSError("typo is not a local folder\nand not a model on the hub")) == "typo is not a local folder"
    assert os_error_line(OSError()) == "OSError"


def test_quote_faults_refuse_a_csv_instead_of_merging_its_rows(tmp_path):
    """A quote left open that closes on a later quoted row, or stays open to the end, would make one record of
    the rows between: the file is refused with the line, as for a field over the size limit."""
    rows = [f'{i},"tweet {i} is fine",Acme' for i in range(40)]
    for name, broken, why in (("closes-later", '20,"tweet 20 left open,Acme', "',' expected after '\"'"),
                              ("open-to-end", '20,"tweet 20 left open', "unexpected end of data")):
        src = tmp_path / f"{name}.csv"
        lines = ["id,text,entity", *rows[:20], broken, *(rows[21:] if name == "closes-later" else [])]
        src.write_text("\n".join(lines) + "\n", encoding="utf-8")
        result = run(str(src), "--out", str(tmp_path / "out.jsonl"), "--no-progress")
        assert result.returncode == 2, (name, result.stderr)
        assert result.stderr.strip().splitlines()[-1].startswith(f"error: {src}: {why} by file line"), result.stderr
        assert "an unclosed quote on it or before it?" in result.stderr and "tweet 2" not in result.stderr
        assert not (tmp_path / "out.jsonl").exists()


def test_a_row_with_more_fields_than_the_header_is_that_rows_error(tmp_path):
    src = tmp_path / "day.csv"
    src.write_text("id,text,entity\n1,great phone, really,Acme\n2,great phone,Acme\n", encoding="utf-8")
    result = run(str(src), "--no-progress")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(x) for x in result.stdout.splitlines()]
    assert lines[0] == {"line": 1, "error": "more fields than the header"}  # its fields are pieces of the tweet
    assert lines[1]["id"] == "2" and "label" in lines[1] and "classified 1 tweets, 1 errors" in result.stderr


def test_no_tweet_text_in_the_messages_about_columns(tmp_path):
    """A CSV without a header row, or JSONL whose records have no 'text': the fields are named, a CSV's columns only
    when they are the expected ones (in a first row of data they are a tweet's words, one word too)."""
    (tmp_path / "noheader.csv").write_text("1,I really love my new phone,Acme\n2,so bad,Acme\n", encoding="utf-8")
    result = run(str(tmp_path / "noheader.csv"), "--no-progress")
    assert result.returncode == 2 and "love" not in result.stderr and "Acme" not in result.stderr, result.stderr
    assert result.stderr.strip().endswith("a CSV needs a header row with a 'text' column, found 3 others (a name other "
                                          "than entity and text is not shown: without a header row it is a tweet's)")
    (tmp_path / "oneword.csv").write_text("Acme,secretword\n", encoding="utf-8")
    result = run(str(tmp_path / "oneword.csv"), "--no-progress")
    assert result.returncode == 2 and "secretword" not in result.stderr and "found 2 others" in result.stderr
    (tmp_path / "twice.csv").write_text("text,entity,text\ngreat phone,Acme,other\n", encoding="utf-8")
    result = run(str(tmp_path / "twice.csv"), "--no-progress")
    assert result.returncode == 2 and result.stderr.strip().endswith("column text appears more than once in the header: "
                                                                     "give each column once"), result.stderr
    (tmp_path / "cased.csv").write_text("Text,Entity\ngreat phone,Acme\n", encoding="utf-8")
    result = run(str(tmp_path / "cased.csv"), "--no-progress")
    assert result.stderr.strip().endswith("found 'Text', 'Entity'; column names are matched exactly, in lower case")
    src = tmp_path / "renamed.jsonl"
    src.write_text(json.dumps({"tweet": "I really love my new phone", "who": "Acme"}) + "\nnot json\n", encoding="utf-8")
    result = run(str(src), "--out", str(tmp_path / "out.jsonl"), "--no-progress")
    assert result.returncode == 2 and not (tmp_path / "out.jsonl").exists()
    assert result.stderr.strip().splitlines()[-1] == f"error: {src}: no record has a 'text' field (fields: tweet, who)"
    result = run(str(src), "--no-progress")  # to standard output: nothing written before the refusal (its fields)
    assert result.returncode == 2 and result.stdout == "", result.stdout


def test_json_files_are_read_as_jsonl_as_bulk_reads_them(tmp_path):
    src = tmp_path / "day.json"
    src.write_text(json.dumps({"text": "great phone", "entity": "Acme"}) + "\n", encoding="utf-8")
    result = run(str(src), "--no-progress")
    assert result.returncode == 0 and json.loads(result.stdout)["label"] in ("positive", "neutral", "negative")


def test_a_text_over_max_text_chars_is_that_rows_error(tmp_path):
    """The API's limit (413 text_too_long) applies offline too: in CSV such a text is mostly rows merged by a quote."""
    src = tmp_path / "day.jsonl"
    src.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(["x" * 51, "y" * 50])))
    result = app_command("classify", "--bundle", str(TINY_BUNDLE), "--no-progress", str(src),
                         env={**os.environ, "MAX_TEXT_CHARS": "50"})
    assert result.returncode == 0, result.stderr
    lines = [json.loads(x) for x in result.stdout.splitlines()]
    assert lines[0] == {"line": 1, "id": 0, "error": "text longer than 50 characters (MAX_TEXT_CHARS)"}
    assert "label" in lines[1]


def test_an_output_that_is_a_folder_is_refused_before_classifying(tmp_path):
    (tmp_path / "day.csv").write_text("text\nhello\n", encoding="utf-8")
    result = run(str(tmp_path / "day.csv"), "--out", str(tmp_path))
    assert result.returncode == 2 and result.stderr.strip().splitlines()[-1] == f"error: {tmp_path} is a folder: give a file name"


def test_a_json_file_that_is_not_jsonl_is_refused_and_a_csv_may_start_with_a_bom(tmp_path):
    """.json is read as JSONL (as bulk reads it): a pretty-printed array has no line that is a JSON object. Excel's
    CSV UTF-8 starts with a byte-order mark, which is not part of the first column's name."""
    src = tmp_path / "day.json"
    src.write_text(json.dumps([{"text": "great phone"}, {"text": "bad phone"}], indent=2), encoding="utf-8")
    result = run(str(src), "--out", str(tmp_path / "out.jsonl"), "--no-progress")
    assert result.returncode == 2 and not (tmp_path / "out.jsonl").exists()
    assert result.stderr.strip().splitlines()[-1] == f"error: {src}: no line is a JSON object (JSONL: one object per line)"
    (tmp_path / "excel.csv").write_text("\ufefftext,entity\ngreat phone,Acme\n", encoding="utf-8")
    result = run(str(tmp_path / "excel.csv"), "--no-progress")
    assert result.returncode == 0 and "label" in json.loads(result.stdout), result.stderr


def test_a_line_python_cannot_read_as_json_is_that_lines_error(tmp_path):
    """An integer over 4,300 digits (ValueError) or nesting too deep (RecursionError), not a traceback."""
    src = tmp_path / "day.jsonl"
    src.write_text('{"text": "a", "n": ' + "1" * 5000 + "}\n" + "[" * 100_000 + "]" * 100_000 + "\n"
                   + json.dumps({"text": "fine"}) + "\n", encoding="utf-8")
    result = run(str(src), "--no-progress")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(x) for x in result.stdout.splitlines()]
    assert [x.get("error") for x in lines] == ["line is not a JSON object"] * 2 + [None]


def test_records_without_any_field_or_a_text_that_is_not_a_string_are_each_their_own_error(tmp_path):
    src = tmp_path / "empty.jsonl"
    src.write_text('{}\n{}\n{"text": 5}\n', encoding="utf-8")
    result = run(str(src), "--no-progress")
    assert result.returncode == 0, result.stderr
    assert [json.loads(x) for x in result.stdout.splitlines()] == [
        {"line": 1, "error": "empty or missing text"}, {"line": 2, "error": "empty or missing text"},
        {"line": 3, "error": "text is not a string"}]


def test_a_csv_separated_by_semicolons_is_refused_with_a_hint(tmp_path):
    (tmp_path / "excel.csv").write_text("text;entity\ngreat phone;Acme\n", encoding="utf-8")
    result = run(str(tmp_path / "excel.csv"), "--no-progress")
    assert result.returncode == 2 and result.stderr.strip().splitlines()[-1].endswith(
        "found 1 other (a name other than entity and text is not shown: without a header row it is a tweet's); one column, "
        "that looks separated by ';', tabs or '|': a CSV here is comma-separated"), result.stderr


def test_a_partial_file_left_by_a_killed_run_of_the_same_pid_is_written_over(tmp_path):
    """A run killed before its clean-up leaves its partial file; a later run that gets the same pid (PID 1 in a
    container, every time) writes over it."""
    from app.bundle import Bundle
    from app.classifier import Classifier
    from app.offline import classify_into

    (tmp_path / "day.csv").write_text("text\nhello\n", encoding="utf-8")
    out = tmp_path / "labels.jsonl"
    out.with_name(f".{out.name}.{os.getpid()}.partial").write_text("cut off", encoding="utf-8")
    counts = classify_into(Classifier(Bundle.load(TINY_BUNDLE), threads=1), tmp_path / "day.csv", out, 100, False)
    assert counts == {"classified": 1, "errors": 0} and json.loads(out.read_text())["line"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["day.csv", "labels.jsonl"]


def test_a_lone_surrogate_in_a_kept_field_is_written_escaped(tmp_path):
    """A JSON escape such as \\ud800 (a tweet dump cut inside a UTF-16 pair) decodes to a lone surrogate, which
    UTF-8 cannot hold: that line is written with JSON's escapes, to a file and to standard output alike (it was an
    encoding traceback)."""
    src = tmp_path / "day.jsonl"
    src.write_text('{"id": "\\ud800x", "text": "great phone"}\n{"id": "ok", "text": "caf\\u00e9"}\n', encoding="utf-8")
    for args in ((), ("--out", str(tmp_path / "labels.jsonl"))):
        result = run(str(src), "--no-progress", *args)
        assert result.returncode == 0, result.stderr
        text = (tmp_path / "labels.jsonl").read_text(encoding="utf-8") if args else result.stdout
        first, second = text.splitlines()
        assert '"id": "\\ud800x"' in first and json.loads(first)["id"] == "\ud800x" and "label" in json.loads(first)
        assert json.loads(second)["id"] == "ok"


def test_out_through_a_symlink_or_into_a_pipe_writes_the_target(tmp_path):
    """``--out`` naming a symlink writes its target and keeps the link; a FIFO is written as it is, not replaced by a
    file; ``/dev/stdout`` is written as the shell set it up: a pipe (it was refused after the model loaded, naming a
    /proc path), or a file appended to with ``>>``, whose lines stay (they were replaced)."""
    (tmp_path / "day.csv").write_text("text\nhello\n", encoding="utf-8")
    piped = run(str(tmp_path / "day.csv"), "--no-progress", "--out", "/dev/stdout")
    assert piped.returncode == 0 and json.loads(piped.stdout)["line"] == 1, piped.stderr
    log = tmp_path / "all.jsonl"
    log.write_text('{"earlier": 1}\n', encoding="utf-8")
    command = f"{shlex.quote(EDGE_PYTHON)} -m app classify --bundle {shlex.quote(str(TINY_BUNDLE))} --no-progress " \
              f"{shlex.quote(str(tmp_path / 'day.csv'))} --out /dev/stdout >> {shlex.quote(str(log))}"
    appended = subprocess.run(["bash", "-c", command], cwd=ROOT, capture_output=True, text=True)
    assert appended.returncode == 0, appended.stderr
    assert [sorted(json.loads(x)) for x in log.read_text(encoding="utf-8").splitlines()] == [
        ["earlier"], ["label", "line", "scores"]]
    target, link = tmp_path / "target.jsonl", tmp_path / "link.jsonl"
    target.write_text("", encoding="utf-8")
    link.symlink_to(target)
    result = run(str(tmp_path / "day.csv"), "--no-progress", "--out", str(link))
    assert result.returncode == 0, result.stderr
    assert link.is_symlink() and json.loads(target.read_text(encoding="utf-8"))["line"] == 1
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    process = subprocess.Popen([EDGE_PYTHON, "-m", "app", "classify", "--bundle", str(TINY_BUNDLE), "--no-progress",
                                str(tmp_path / "day.csv"), "--out", str(fifo)], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        with os.fdopen(reader, "rb") as pipe:
            os.set_blocking(reader, True)
            assert process.wait(timeout=60) == 0, process.stderr.read()
            assert json.loads(pipe.read())["line"] == 1
    finally:
        kill_tree(process)
    assert stat.S_ISFIFO(fifo.lstat().st_mode)


def test_out_naming_the_input_is_refused(tmp_path):
    """The input file, written over by its own results (through a link too), would be lost."""
    src = tmp_path / "day.csv"
    src.write_text("text\nhello\n", encoding="utf-8")
    (tmp_path / "same.csv").symlink_to(src)
    for out in (src, tmp_path / "same.csv"):
        result = run(str(src), "--no-progress", "--out", str(out))
        assert result.returncode == 2 and result.stderr.strip().splitlines()[-1] == \
            f"error: {out} is the input file: give another --out", result.stderr
    command = f"{shlex.quote(EDGE_PYTHON)} -m app classify --bundle {shlex.quote(str(TINY_BUNDLE))} --no-progress " \
              f"{shlex.quote(str(src))} --out /dev/stdout >> {shlex.quote(str(src))}"  # the input, through the shell
    result = subprocess.run(["bash", "-c", command], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2 and result.stderr.strip().splitlines()[-1] == \
        "error: /dev/stdout is the input file: give another --out", result.stderr
    assert src.read_text(encoding="utf-8") == "text\nhello\n"


def test_out_as_the_root_folder_or_a_file_under_dev_is_an_output_file_as_any(tmp_path):
    """``/`` is a folder as any (it was an IndexError traceback); a plain file under /dev (/dev/shm) is replaced whole
    as any file (every path under /dev was appended to)."""
    (tmp_path / "day.csv").write_text("text\nhello\n", encoding="utf-8")
    result = run(str(tmp_path / "day.csv"), "--no-progress", "--out", "/")
    assert result.returncode == 2 and result.stderr.strip().splitlines()[-1] == "error: / is a folder: give a file name"
    out = Path(tempfile.mkdtemp(dir="/dev/shm" if Path("/dev/shm").is_dir() else None)) / "labels.jsonl"
    try:
        for _ in range(2):
            assert run(str(tmp_path / "day.csv"), "--no-progress", "--out", str(out)).returncode == 0
        assert len(out.read_text(encoding="utf-8").splitlines()) == 1
    finally:
        shutil.rmtree(out.parent)


def test_a_csv_text_over_the_csv_modules_own_limit_is_that_rows_error(tmp_path):
    """A field over the csv module's default 131,072 characters used to refuse the whole file: within
    MAX_TEXT_CHARS's range it is read, and a text over MAX_TEXT_CHARS is that row's error, as in JSONL."""
    src = tmp_path / "day.csv"
    src.write_text(f"text\nbefore\n{'x' * 140_000}\nafter\n", encoding="utf-8")
    result = run(str(src), "--no-progress")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(x) for x in result.stdout.splitlines()]
    assert [sorted(x) for x in lines] == [["label", "line", "scores"], ["error", "line"], ["label", "line", "scores"]]
    assert lines[1]["error"] == "text longer than 4000 characters (MAX_TEXT_CHARS)"
