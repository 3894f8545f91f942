"""`python -m app classify FILE`: CSV or JSONL in, JSONL out, in order, bad rows reported, no HTTP."""

import json
import subprocess

from tests.conftest import EDGE_PYTHON, ROOT, TINY_BUNDLE, TINY_RELATED_BUNDLE


def run(*args, bundle=TINY_BUNDLE):
    return subprocess.run([EDGE_PYTHON, "-m", "app", "classify", "--bundle", str(bundle), *args],
                          cwd=ROOT, capture_output=True, text=True)


def test_csv_to_jsonl_file(tmp_path):
    src = tmp_path / "day.csv"
    src.write_text('id,text,entity\n1,"Acme recalls phones, again",Acme\n2,,Acme\n3,great day,\n', encoding="utf-8")
    out = tmp_path / "out.jsonl"
    result = run(str(src), "--out", str(out))
    assert result.returncode == 0, result.stderr
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["line"] for x in lines] == [1, 2, 3]
    assert lines[0]["id"] == "1" and lines[0]["label"] in ("positive", "neutral", "negative")
    assert lines[1] == {"line": 2, "error": "empty or missing text"}
    assert "text" not in lines[0] and "classified 2 tweets, 1 errors" in result.stderr
    assert not list(tmp_path.glob(".*partial"))


def test_jsonl_to_stdout(tmp_path):
    src = tmp_path / "day.jsonl"
    src.write_text(json.dumps({"text": "bad service", "entity": "Globex Bank"}) + "\nnot json\n"
                   + json.dumps({"text": "ok"}) + "\n", encoding="utf-8")
    result = run(str(src), "--no-progress")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(x) for x in result.stdout.splitlines()]
    assert [("label" in x, x["line"]) for x in lines] == [(True, 1), (False, 2), (True, 3)]
    assert not any("related" in x for x in lines)


def test_related_written_where_the_bundle_has_that_head(tmp_path):
    src = tmp_path / "day.jsonl"
    src.write_text(json.dumps({"text": "acme of perfection", "entity": "Acme"}) + "\n", encoding="utf-8")
    result = run(str(src), "--no-progress", bundle=TINY_RELATED_BUNDLE)
    assert result.returncode == 0, result.stderr
    (line,) = [json.loads(x) for x in result.stdout.splitlines()]
    assert 0 <= line["related"] <= 1 and line["label"] in line["scores"]


def test_unreadable_inputs_give_a_clear_error(tmp_path):
    (tmp_path / "bad.csv").write_text("tweet,who\nx,y\n")
    result = run(str(tmp_path / "bad.csv"))
    assert result.returncode == 2 and "needs a header row with a 'text' column" in result.stderr
    result = run(str(tmp_path / "absent.csv"))
    assert result.returncode == 2 and "no such file" in result.stderr
