"""`python -m bench`: a value it cannot run with, or a bundle that cannot serve, is one line and status 2, before any
measuring."""

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from tests.conftest import ROOT, kill_tree, needs_replab, with_manifest


def bench(*args: str, **env: str) -> subprocess.CompletedProcess:
    """``python -m bench ARGS``; where it were to run a benchmark instead of refusing, it and every process it started
    (the servers run in sessions of their own) are killed at the timeout."""
    with subprocess.Popen([sys.executable, "-m", "bench", *args], cwd=ROOT, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env={**os.environ, **env}) as process:
        try:
            out, err = process.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            kill_tree(process)
            raise
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


@pytest.mark.parametrize("args, message", [
    (["reliability", "--soak-seconds", "30"], "must be more than the soak's 60 s warm-up, got 30"),
    (["bulk", "--repeats", "1"], "must be at least 2, got 1"),  # the best of one run would keep a cold JVM's
    (["bulk", "--tweets", "many"], "expected a whole number, got 'many'"),
    (["quick", "--threads", "0"], "must be from 1 to 64, got 0"),
    (["quick", "--tweets", "5"], "--tweets is for the bulk plan(s), not quick"),  # not silently ignored
    (["bulk", "--against", "bundles/default"], "--against is for the full and quick and smoke plan(s), not bulk"),
])
def test_a_value_the_benchmarks_cannot_run_with_is_refused_by_argparse(args, message):
    result = bench(*args)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


@needs_replab
def test_a_bundle_that_cannot_serve_is_one_line(tmp_path):
    broken = with_manifest(ROOT / "bundles" / "default", tmp_path / "bundle", schema_version=0)
    for bundle in (tmp_path / "absent", broken):
        result = bench("smoke", "--bundle", str(bundle), "--out", str(tmp_path / "results"))
        assert result.returncode == 2, result.stderr[-2000:]
        assert result.stderr.strip().splitlines() == [result.stderr.strip()] and result.stderr.startswith(
            f"bench: bundle {bundle}: "), result.stderr
    assert not (tmp_path / "results").exists()


def _one_line(result: subprocess.CompletedProcess, says: str) -> None:
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip().splitlines() == [f"bench: {says}"], result.stderr[-2000:]


@needs_replab
def test_what_the_options_name_is_checked_before_any_measuring(tmp_path):
    """A bad --against, --checkpoint, --data, --out or EDGE_PYTHON used to be met only when reached (minutes in, the
    --out after the whole run, with a traceback), or skipped (a --checkpoint given): now one line, nothing run."""
    (tmp_path / "file").write_text("mine\n")
    out = tmp_path / "results"
    for args, says in [(["--against", str(tmp_path / "absent")], f"bundle {tmp_path / 'absent'}: "),
                       (["--checkpoint", str(tmp_path / "absent")], f"checkpoint {tmp_path / 'absent'}: no such directory"),
                       (["--data", str(tmp_path / "file")], f"RepLab 2013 data (--data) {tmp_path / 'file'}: not a folder"),
                       (["--out", str(tmp_path / "file")], f"{tmp_path / 'file'} is a file, not a folder"),
                       (["--out", str(tmp_path / "file" / "sub")], f"--out {tmp_path / 'file' / 'sub'}: Not a directory")]:
        result = bench("smoke", *args, *([] if "--out" in args else ["--out", str(out)]))
        assert result.returncode == 2 and result.stderr.startswith(f"bench: {says}"), (args, result.stderr[-2000:])
        assert len(result.stderr.strip().splitlines()) == 1 and "bench: service" not in result.stdout
    _one_line(bench("smoke", "--out", str(out), EDGE_PYTHON=str(tmp_path / "python")),
              f"EDGE_PYTHON={tmp_path / 'python'}: no such file")
    assert not out.exists() and (tmp_path / "file").read_text() == "mine\n"


def _cmdline(process: psutil.Process) -> str:
    """A live process's command line; empty for one gone (or a zombie)."""
    try:
        return " ".join(process.cmdline()) if process.status() != psutil.STATUS_ZOMBIE else ""
    except psutil.Error:
        return ""


@needs_replab
@pytest.mark.parametrize("plan, server, running, group", [
    (["smoke"], "gunicorn", None, False),
    (["bulk", "--tweets", "60"], "java", None, False),  # as Spark starts its JVM, which would then wait for ever
    (["bulk", "--tweets", "1200"], "java", "Spark 4", True),  # mid-job, the JVM stopped too
], ids=["smoke", "bulk", "bulk-group"])
def test_sigterm_stops_the_benchmarks_servers_and_writes_nothing(tmp_path, plan, server, running, group):
    """SIGTERM (timeout's, CI's, kill's) used to end the benchmark and leave its gunicorn serving, adopted by init:
    its servers run in sessions of their own, which the signal does not reach. The bulk plan's Spark takes SIGINT,
    and SIGTERM stays the benchmark's, sent to the process or to its whole group."""
    if server == "java":
        pytest.importorskip("pyspark", reason="PySpark not installed (requirements-bulk.txt)")
    out, log = tmp_path / "results", tmp_path / "stderr"
    with open(log, "w") as err_file, subprocess.Popen([sys.executable, "-m", "bench", *plan, "--out", str(out)], cwd=ROOT,
                                                      stdout=subprocess.DEVNULL, stderr=err_file,
                                                      start_new_session=group) as process:
        servers, left = [], []
        try:
            me, deadline = psutil.Process(process.pid), time.monotonic() + 120
            while time.monotonic() < deadline and process.poll() is None:
                servers = [p for p in me.children(recursive=True) if server in _cmdline(p)]
                if servers and (running is None or running in log.read_text()):
                    break
                time.sleep(0.2)
            assert servers, "no server started"
            if running:
                time.sleep(3)  # into the job
            os.killpg(process.pid, signal.SIGTERM) if group else process.send_signal(signal.SIGTERM)
            process.wait(timeout=90)
        finally:
            kill_tree(process)
            time.sleep(1)  # a JVM whose Python is gone exits on its own
            left = [p for p in servers if _cmdline(p)]
            for survivor in left:  # where the benchmark failed to: nothing is left running after the test
                survivor.kill()
    err = log.read_text()
    assert process.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert err.strip().splitlines()[-1] == "bench: stopped: its servers were stopped and no result was written"
    assert "Traceback" not in err, err[-3000:]
    assert not left
    assert not out.exists() or not any(out.iterdir())
