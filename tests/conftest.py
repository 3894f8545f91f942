"""Shared fixtures: the committed bundles, ../shared data, and an app built through the factory."""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from unittest import mock

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
TINY_BUNDLE = FIXTURES / "tiny-bundle"
TINY_RELATED_BUNDLE = FIXTURES / "tiny-related-bundle"  # with the relatedness head (two outputs)
DEFAULT_BUNDLE = ROOT / "bundles" / "default"
SHARED = ROOT.parent / "shared"
REPLAB = SHARED / "data" / "replab2013"
MINILM = SHARED / "models" / "all-MiniLM-L6-v2"
# The edge-only virtual environment (make test sets EDGE_PYTHON), so that served tests prove it suffices.
EDGE_PYTHON = os.environ.get("EDGE_PYTHON") or sys.executable


def _main(*args: str) -> tuple[int, str, str]:
    """``python -m model_build ARGS`` run in this process through the entry point's ``main`` (an uncaught exception
    fails the test as a traceback would): its status, stdout and stderr. Interpreter starts and imports cost about
    10 s a command; tests/test_build.py's end-to-end train, package and report run the real entry point. USE_TF
    stays at transformers' default for this process's one import of it, as ``package`` needs TensorFlow there."""
    from model_build.cli import main

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err), mock.patch.dict(os.environ, {"USE_TF": "AUTO"}):
        status = main(list(args))
    return status, out.getvalue(), err.getvalue()


def cli(*args: str) -> str:
    """The output of ``python -m model_build ARGS``, which must succeed (run as ``_main`` says)."""
    status, out, err = _main(*args)
    assert status == 0, out[-3000:] + err[-3000:]
    return out


def refused(*args: str) -> str:
    """The one ``error: ...`` line of ``python -m model_build ARGS``, refused with status 2 (run as ``_main`` says)."""
    status, out, err = _main(*args)
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert status == 2 and len(errors) == 1, (status, out[-2000:], err[-2000:])
    return errors[0]


needs_replab = pytest.mark.skipif(not REPLAB.is_dir(), reason=f"RepLab data not found at {REPLAB} (../shared absent)")
needs_minilm = pytest.mark.skipif(not MINILM.is_dir(), reason=f"MiniLM base not found at {MINILM} (../shared absent)")


@pytest.fixture
def tiny_bundle_copy(tmp_path: Path) -> Path:
    """A private, writable copy of the tiny test bundle."""
    target = tmp_path / "bundle"
    shutil.copytree(TINY_BUNDLE, target)
    return target


def with_manifest(bundle: Path, target: Path, **fields) -> Path:
    """A copy of ``bundle`` at ``target`` whose manifest sets ``fields`` (no checksum covers the manifest)."""
    shutil.copytree(bundle, target)
    manifest = json.loads((target / "manifest.json").read_text())
    manifest.update(fields)
    (target / "manifest.json").write_text(json.dumps(manifest))
    return target


def splitting_threshold(probabilities) -> float:
    """A threshold between the middle two distinct ``probabilities`` (rounded to 6 decimals, as results are), half a
    unit of the 6th decimal off each, so that some fall on each side of it whether rounded or not."""
    values = sorted(set(probabilities))
    assert len(values) > 1, "the probabilities do not differ"
    middle = len(values) // 2
    return round((values[middle - 1] + values[middle]) / 2, 7)


def real_bundles() -> list[Path]:
    return [b for b in (DEFAULT_BUNDLE, TINY_BUNDLE, TINY_RELATED_BUNDLE) if (b / "manifest.json").is_file()]


@pytest.fixture(scope="session")
def replab_sample():
    """Up to 300 English RepLab tweets (every 50th), or skip when ../shared is absent."""
    if not REPLAB.is_dir():
        pytest.skip(f"RepLab data not found at {REPLAB} (../shared absent)")
    from model_build.data import load_replab

    examples, _ = load_replab(REPLAB)
    return examples[::50][:300]
