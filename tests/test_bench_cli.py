"""`python -m bench`: a value it cannot run with, or a bundle that cannot serve, is one line and status 2, before any
measuring."""

import subprocess
import sys

import pytest

from tests.conftest import ROOT, kill_tree, needs_replab, with_manifest


def bench(*args: str) -> subprocess.CompletedProcess:
    """``python -m bench ARGS``; where it were to run a benchmark instead of refusing, it and every process it started
    (the servers run in sessions of their own) are killed at the timeout."""
    with subprocess.Popen([sys.executable, "-m", "bench", *args], cwd=ROOT, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as process:
        try:
            out, err = process.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            kill_tree(process)
            raise
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


@pytest.mark.parametrize("args, message", [
    (["reliability", "--soak-seconds", "30"], "must be more than the soak's 60 s warm-up, got 30"),
    (["bulk", "--repeats", "0"], "must be at least 1, got 0"),
    (["bulk", "--tweets", "many"], "expected a whole number, got 'many'"),
    (["quick", "--threads", "0"], "must be from 1 to 64, got 0"),
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
