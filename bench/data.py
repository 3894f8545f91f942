"""The tweets every benchmark runs on: the default bundle's own validation split of RepLab 2013."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

from app.bundle import Bundle
from app.errors import AppError
from model_build.checkpoint import DataSpec
from model_build.data import Example
from model_build.errors import BuildError
from model_build.splits import Holdout, SplitSpec

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BUNDLE = ROOT / "bundles" / "default"
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "replab2013"


def _training(bundle: Path) -> dict:
    """How ``bundle`` was trained (its manifest's ``training``), the bundle loaded and checked first."""
    training = Bundle.load(bundle).manifest().get("training")
    if not isinstance(training, dict):
        raise AppError(f"bundle {bundle}: its manifest says nothing of how it was trained, which the benchmarks read")
    return training


def data_spec(bundle: Path = DEFAULT_BUNDLE) -> DataSpec:
    """The data, and its split, of the run that made ``bundle``; for a bundle trained on everything, the same data
    split with the default time gap (the split its validation figures come from: tweets it saw in training)."""
    spec = DataSpec.from_dict(_training(bundle)["data"])
    if spec.holdout.val_fraction == 0:
        spec = spec.with_holdout(SplitSpec(Holdout.TIME, 0.15, 0.15, spec.holdout.seed))
    return spec


def bundle_checkpoint(bundle: Path = DEFAULT_BUNDLE) -> Path:
    """Where the checkpoint ``bundle`` was converted from is when built here: its training run's ``best/`` (the
    manifest's ``out_dir``, relative to the project)."""
    out_dir = _training(bundle)["config"]["out_dir"]
    return ROOT / out_dir / "best"


def trained_on_everything(bundle: Path = DEFAULT_BUNDLE) -> bool:
    """True when ``bundle`` saw the benchmark's "validation" tweets in training (fine for speed; its accuracy
    there compares runtimes, not models)."""
    return _training(bundle)["data"]["val_fraction"] == 0


def split_tweets(data: Path = DEFAULT_DATA, bundle: Path = DEFAULT_BUNDLE) -> tuple[list[Example], list[Example]]:
    """The training and validation tweets of ``data_spec(bundle)`` (same language, fractions, seed)."""
    check_data(data)
    return data_spec(bundle).splits(data)


def check_data(data: Path) -> None:
    """Refuse a ``--data`` that is no folder (where the RepLab 2013 split would be)."""
    if not Path(data).is_dir():
        state = "not a folder" if Path(data).exists() else "not found"
        raise BuildError(f"RepLab 2013 data (--data) {data}: {state}: the benchmarks need its training split (../shared)")


def request_bodies(tweets: Sequence[Example]) -> list[bytes]:
    """Each tweet as the service's one-tweet request body (and a JSONL line of the offline command's input)."""
    return [json.dumps({"text": t.text, "entity": t.entity}).encode() for t in tweets]


def shown(path: Path) -> str:
    """A path as the results give it: from the project's root where it is inside (results are committed)."""
    path = Path(os.path.abspath(path))
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
