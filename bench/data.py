"""The tweets every benchmark runs on: the default bundle's own validation split of RepLab 2013."""

from __future__ import annotations

import json
from pathlib import Path

from model_build.checkpoint import DataSpec
from model_build.data import Example

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BUNDLE = ROOT / "bundles" / "default"
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "replab2013"


def data_spec(bundle: Path = DEFAULT_BUNDLE) -> DataSpec:
    """The data, and its split, of the run that made ``bundle``."""
    return DataSpec.from_dict(json.loads((Path(bundle) / "manifest.json").read_text())["training"]["data"])


def split_tweets(data: Path = DEFAULT_DATA, bundle: Path = DEFAULT_BUNDLE) -> tuple[list[Example], list[Example]]:
    """The training and validation tweets of the run that made ``bundle`` (same language, fraction, seed)."""
    if not Path(data).is_dir():
        raise SystemExit(f"bench: {data} not found: the benchmarks need the RepLab 2013 training split (../shared)")
    return data_spec(bundle).splits(data)
