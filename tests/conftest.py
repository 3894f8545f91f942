"""Shared fixtures: the committed bundles, ../shared data, and an app built through the factory."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tempfile
import time
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Iterator
from unittest import mock

import psutil
import pytest
from hypothesis import settings
from hypothesis.configuration import set_hypothesis_home_dir

from bench.server import edge_python

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
TINY_BUNDLE = FIXTURES / "tiny-bundle"
TINY_RELATED_BUNDLE = FIXTURES / "tiny-related-bundle"  # with the relatedness head (two outputs)
DEFAULT_BUNDLE = ROOT / "bundles" / "default"
SHARED = ROOT.parent / "shared"
REPLAB = SHARED / "data" / "replab2013"
MINILM = SHARED / "models" / "all-MiniLM-L6-v2"
# The edge-only virtual environment, so that served tests prove it suffices.
EDGE_PYTHON = edge_python()


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


# No example database (.hypothesis/examples): every run explores afresh, rather than replaying an earlier run's.
settings.register_profile("suite", database=None)
settings.load_profile("suite")
# Hypothesis's own caches (the constants it collects from our modules, Unicode tables) go to the temporary folder,
# not into the checkout.
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "reputation-hypothesis")


def interrupted_when(job: subprocess.Popen, ready, stop, wait: float = 120) -> str:
    """Wait until ``ready()`` holds (or the command ends, or ``wait`` seconds pass), then ``stop()`` it; the command
    must say 'interrupted' last and exit with 130. Its standard error."""
    deadline = time.monotonic() + wait
    while not ready() and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    stop()
    try:
        stderr = job.communicate(timeout=wait)[1]
    except subprocess.TimeoutExpired:
        kill_tree(job)
        raise
    assert job.returncode == 130 and stderr.strip().splitlines()[-1] == "interrupted", stderr[-2000:]
    return stderr


def kill_tree(process) -> None:
    """Kill a process and every process it started (servers and JVMs run in sessions of their own): for a test that
    gives up waiting on a command, so that nothing is left running."""
    try:
        family = [*psutil.Process(process.pid).children(recursive=True), psutil.Process(process.pid)]
    except psutil.NoSuchProcess:
        return
    for member in family:
        try:
            member.kill()
        except psutil.NoSuchProcess:
            pass
    process.wait()


def app_command(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m app ARGS`` in the edge environment, from the checkout: its status and text output."""
    return subprocess.run([EDGE_PYTHON, "-m", "app", *args], cwd=ROOT, capture_output=True, text=True, env=env)


def post_json(client, body, path: str = "/classify", content_type: str = "application/json", **kw):
    """POST a body (bytes or text as they are, anything else as JSON) through a Flask test client."""
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return client.post(path, data=data, content_type=content_type, **kw)


class Stopped(Exception):
    """What :func:`stopped_after_save` raises where a Ctrl-C would come."""


@contextmanager
def stopped_after_save(step: int | None = None) -> Iterator[None]:
    """The real Trainer stopped right after it saves its checkpoint at ``step`` (its first, where None), as by Ctrl-C
    then: the block must end so."""
    from transformers.trainer_callback import CallbackHandler

    saved = CallbackHandler.on_save

    def stop_after(handler, args, state, control):
        control = saved(handler, args, state, control)
        if step is None or state.global_step == step:
            raise Stopped
        return control

    with mock.patch.object(CallbackHandler, "on_save", stop_after), pytest.raises(Stopped):
        yield


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
    """The committed bundles: the default one and the two tiny ones (with and without the relatedness head)."""
    return [DEFAULT_BUNDLE, TINY_BUNDLE, TINY_RELATED_BUNDLE]


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory) -> Path:
    """A tiny random BERT of the fixture vocabulary (``init-random``), made once: tests train from it, none changes it."""
    base = tmp_path_factory.mktemp("tiny") / "base"
    cli("init-random", "--arch", "bert", "--size", "tiny", "--vocab", str(FIXTURES / "vocab.txt"), "--out", str(base))
    return base


@pytest.fixture
def tokenizerless(tiny_base, tmp_path) -> Path:
    """The tiny base's config and weights without its tokenizer files, as a model saved with ``save_pretrained``
    alone."""
    out = tmp_path / "tokenizerless"
    out.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny_base / name, out / name)
    return out


@pytest.fixture(scope="session")
def replab_sample():
    """Up to 300 English RepLab tweets (every 50th), or skip when ../shared is absent."""
    if not REPLAB.is_dir():
        pytest.skip(f"RepLab data not found at {REPLAB} (../shared absent)")
    from model_build.data import load_replab

    examples, _ = load_replab(REPLAB)
    return examples[::50][:300]
