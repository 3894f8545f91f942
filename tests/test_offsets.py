"""``package --negative-offset``: an offset on the negative logit, chosen on the measured run's validation split or
given, carried by the bundle and taken by every figure, on a tiny RepLab-layout tree and a tiny random BERT."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from sklearn.metrics import f1_score

from app.bundle import Bundle
from tests.conftest import cli, refused, splitting_threshold
from tests.test_curve import write_replab

CHOSEN = "the highest macro-F1 on the validation split"


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_base):
    """A tiny random BERT trained one epoch with the default time split (a gap, then validation), and the same
    recipe on everything."""
    tmp = tmp_path_factory.mktemp("offsets")
    write_replab(tmp / "replab")
    (tmp / "base").symlink_to(tiny_base)
    common = ["train", "--data", str(tmp / "replab"), "--base", str(tmp / "base"), "--epochs", "1", "--learning-rate",
              "1e-3", "--batch-size", "8"]
    cli(*common, "--out", str(tmp / "run"))
    cli(*common, "--val-fraction", "0", "--gap-fraction", "0", "--out", str(tmp / "all"))
    return tmp


def _float_logits(run):
    """The run's float model on its validation tweets and its gap's: (tweets, polarity logits) each."""
    from model_build.checkpoint import Checkpoint
    from model_build.scoring import encode_examples, predict

    checkpoint = Checkpoint.load(run)
    _, gap, val = checkpoint.data.parts()
    encoder = checkpoint.encoder()
    return {part: (tweets, predict(checkpoint.model(), encoder, encode_examples(encoder, tweets))[0])
            for part, tweets in (("validation", val), ("gap", gap))}


def _with_offset(tweets, logits, offset):
    from model_build.scoring import validation_metrics

    return validation_metrics(tweets, logits + np.array([0, 0, offset], dtype=np.float32), None)


def test_the_offset_chosen_is_the_nearest_zero_of_the_best():
    """Neutral tweets over-called negative by 0.35 and negative ones ahead by 1.0: every offset from -0.4 to -0.9
    gets them all right, and -0.4 is chosen; tweets without a polarity label do not count; where 0 is as good as
    any, 0 is chosen."""
    from model_build.data import Example
    from model_build.offsets import best_negative_offset

    tweets = [Example("t", label) for label in ("positive", "neutral", "negative", None) for _ in range(5)]
    rows = {"positive": [3.0, 1.0, 1.0], "neutral": [0.0, 1.0, 1.35], "negative": [0.0, 1.0, 2.0], None: [0.0, 0.0, 9.0]}
    logits = np.array([rows[e.label] for e in tweets], dtype=np.float32)
    assert best_negative_offset(tweets, logits) == -0.4
    logits[5:10, 2] = 0.5  # the neutral tweets now right at 0
    assert best_negative_offset(tweets, logits) == 0.0


def _package(runs, *args, out):
    cli("package", "--data", str(runs / "replab"), *args, "--calibration", "10", "--out", str(out))
    return Bundle.load(out)


def test_the_offset_is_chosen_on_validation_and_every_figure_takes_it(runs, tmp_path):
    """The offset of -1.5 to 0.5 (step 0.1) of highest float macro-F1 on validation (the nearest 0 of equals) goes
    into the manifest's label_offsets; the float figures are taken with it, beside them without; the bundle's own
    figures are the edge runtime's labels with it; a refit given --holdout-run gets that run's choice."""
    from model_build.data import LABELS
    from model_build.evaluate import evaluate_bundle
    from model_build.offsets import GRID

    assert LABELS[2] == "negative"
    scored = _float_logits(runs / "run" / "best")
    tweets, logits = scored["validation"]
    rows = [i for i, e in enumerate(tweets) if e.label is not None]
    gold = [LABELS.index(tweets[i].label) for i in rows]
    f1 = {o: f1_score(gold, (logits[rows] + [0, 0, o]).argmax(1), labels=[0, 1, 2], average="macro") for o in GRID}
    expected = min((o for o in GRID if f1[o] == max(f1.values())), key=abs)
    bundle = _package(runs, "--checkpoint", str(runs / "run" / "best"), "--negative-offset", "chosen",
                      out=tmp_path / "bundles" / "dynamic-int8")
    manifest = bundle.manifest()
    assert manifest["label_offsets"] == {"negative": expected}
    assert bundle.label_offsets == (0.0, 0.0, expected)
    metrics = manifest["metrics"]
    stated = metrics["negative_offset"]
    assert (stated["offset"], stated["chosen"], stated["grid"]) == (expected, CHOSEN, "-1.5 to 0.5, step 0.1")
    assert str(runs / "run" / "best") in stated["model"]
    for part, key in (("validation", "framework_validation"), ("gap", "framework_gap")):
        with_it = _with_offset(*scored[part], expected)
        assert {k: metrics[key][k] for k in ("n", "accuracy", "macro_f1", "confusion")} == {
            k: with_it[k] for k in ("n", "accuracy", "macro_f1", "confusion")}
        without = _with_offset(*scored[part], 0.0)
        assert stated["without"][part] == {"accuracy": without["accuracy"], "macro_f1": without["macro_f1"],
                                           "negative_f1": without["per_class"]["negative"]["f1"]}
        served = evaluate_bundle(bundle.path, scored[part][0])
        for key in ("n", "accuracy", "macro_f1", "per_class", "confusion"):
            assert metrics[part][key] == json.loads(json.dumps(served[key])), (part, key)
    assert stated["without"]["validation"]["macro_f1"] == round(f1[0.0], 4)
    assert metrics["framework_validation"]["macro_f1"] == round(f1[expected], 4)
    refit = _package(runs, "--checkpoint", str(runs / "all" / "best"), "--holdout-run", str(runs / "run" / "best"),
                     "--negative-offset", "chosen", "--variants", "float32", out=tmp_path / "refit").manifest()
    assert refit["label_offsets"] == {"negative": expected} and refit["metrics"]["negative_offset"]["chosen"] == CHOSEN


def test_a_given_offset_moves_the_labels_and_bad_ones_are_refused(runs, tmp_path):
    """A number given is the bundle's offset as it is: between the validation tweets' margins, it turns some of the
    served labels to negative; a value that is not a number within 10 of 0, or 'chosen' without a validation split
    to choose on, is refused in one line; bundles of different offsets are not reported on together."""
    tweets, logits = _float_logits(runs / "run" / "best")["validation"]
    given = float(splitting_threshold((np.delete(logits, 2, axis=1).max(axis=1) - logits[:, 2]).round(6)))
    run = ["--checkpoint", str(runs / "run" / "best")]
    bundle = _package(runs, *run, "--negative-offset", str(given), out=tmp_path / "given" / "dynamic-int8")
    plain = _package(runs, *run, out=tmp_path / "plain")
    manifest = bundle.manifest()
    assert manifest["label_offsets"] == {"negative": given} and "label_offsets" not in plain.manifest()
    assert manifest["metrics"]["negative_offset"]["chosen"] == "given" and "grid" not in manifest["metrics"]["negative_offset"]
    with_it = _with_offset(tweets, logits, given)
    assert manifest["metrics"]["framework_validation"]["confusion"] == with_it["confusion"]
    moved, before = (np.sum(b.manifest()["metrics"]["validation"]["confusion"], axis=0) for b in (bundle, plain))
    assert moved[2] > before[2] and moved.sum() == before.sum()  # more called negative, out of the same tweets
    refit = _package(runs, "--checkpoint", str(runs / "all" / "best"), "--holdout-run", str(runs / "run" / "best"),
                     "--negative-offset", str(given), out=tmp_path / "refit").manifest()
    assert refit["label_offsets"] == {"negative": given}
    for part in ("validation", "gap"):  # the time run's bundle's figures, with the offset
        for key in ("n", "accuracy", "macro_f1", "per_class", "confusion"):
            assert refit["metrics"][part][key] == manifest["metrics"][part][key], (part, key)
    alone = _package(runs, "--checkpoint", str(runs / "all" / "best"), "--negative-offset", "-0.5", "--variants",
                     "float32", out=tmp_path / "alone").manifest()  # no held-out tweets: the offset, no figures
    assert alone["label_offsets"] == {"negative": -0.5} and alone["metrics"]["negative_offset"] == {
        "offset": -0.5, "chosen": "given"}
    cli("report", "--data", str(runs / "replab"), *run, "--bundles", str(tmp_path / "given"), "--out",
        str(tmp_path / "report"))
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["framework"]["confusion"] == with_it["confusion"]  # the float model takes the offset too
    assert f"negative {given:+g}." in (tmp_path / "report" / "report.md").read_text()
    shutil.copytree(tmp_path / "given", tmp_path / "mixed")
    shutil.copytree(tmp_path / "plain", tmp_path / "mixed" / "plain")
    package = ["package", "--data", str(runs / "replab"), "--out", str(tmp_path / "refused")]
    for value in ("high", "nan", "-11"):
        assert "give 'chosen' or a number from -10 to 10" in refused(*package, *run, "--negative-offset", value)
    assert "no validation split to choose the negative offset on" in refused(
        *package, "--checkpoint", str(runs / "all" / "best"), "--negative-offset", "chosen")
    assert "the bundles' label offsets differ" in refused(
        "report", "--data", str(runs / "replab"), *run, "--bundles", str(tmp_path / "mixed"), "--out",
        str(tmp_path / "mixed-report"))
    assert not (tmp_path / "refused").exists() and not (tmp_path / "mixed-report").exists()
