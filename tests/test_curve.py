"""Adapting to an entity never seen in training: ``train --init`` with a replayed ``--sample`` and the own tweets,
and the ``curve`` command that measures it, on a tiny RepLab-layout tree and a tiny random BERT."""

from __future__ import annotations

import json

import pytest

from app.bundle import Bundle
from model_build.splits import UNSEEN_ENTITIES
from tests.conftest import cli, refused
from tests.test_build import FIXTURE_ROWS

UNSEEN, SEEN = UNSEEN_ENTITIES[0], UNSEEN_ENTITIES[0].replace("E001", "E002")
COUNTS = {UNSEEN: 66, SEEN: 40}  # the unseen entity: 8 tweets to add from, 58 later ones to score on


def _q(*cells) -> str:
    return "\t".join(f'"{c}"' for c in cells) + "\n"


def write_replab(root, unseen_unrelated: bool = True):
    """A RepLab 2013 training tree of the fixture tweets: one unseen entity and one seen, timestamps in order;
    without ``unseen_unrelated``, the unseen entity's unrelated tweets are left out."""
    for sub in ("tweet_info", "texts", "goldstandard"):
        (root / "training" / sub).mkdir(parents=True)
    (root / "replab2013_entities.tsv").write_text(
        _q("entity_id", "query", "entity_name", "category") + _q(UNSEEN, "Acme", "Acme Inc", "automotive")
        + _q(SEEN, "Zorblax", "Zorblax Ltd", "automotive"))
    polarity, filtering = [_q("entity_id", "tweet_id", "polarity")], [_q("entity_id", "tweet_id", "filtering")]
    for entity, n in COUNTS.items():
        info = [_q("tweet_id", "author", "entity_id", "tweet_url", "language", "timestamp", "urls", "extended_urls",
                   "md5_extended_urls", "is_near_duplicate_of")]
        texts = [_q("tweet_id", "author", "entity_id", "text")]
        for i in range(n):
            row = FIXTURE_ROWS[i % len(FIXTURE_ROWS)]
            if entity == UNSEEN and not unseen_unrelated and row["related"] == "unrelated":
                continue
            info.append(_q(i, "a", entity, "u", "EN", 1000 + i, "", "", "", -1))
            texts.append(_q(i, "a", entity, f"{row['text']} {i}".replace('"', "'")))
            filtering.append(_q(entity, i, "UNRELATED" if row["related"] == "unrelated" else "RELATED"))
            if row["label"]:
                polarity.append(_q(entity, i, row["label"].upper()))
        (root / "training" / "tweet_info" / f"{entity}.dat").write_text("".join(info))
        (root / "training" / "texts" / f"{entity}.tsv").write_text("".join(texts))
    (root / "training" / "goldstandard" / "goldstandard_polarity.dat").write_text("".join(polarity))
    (root / "training" / "goldstandard" / "goldstandard_filtering.dat").write_text("".join(filtering))


@pytest.fixture(scope="module")
def unseen_run(tmp_path_factory, tiny_base):
    """A tiny random BERT trained one epoch on the seen entity only (--holdout entities)."""
    tmp = tmp_path_factory.mktemp("curve")
    write_replab(tmp / "replab")
    (tmp / "base").symlink_to(tiny_base)
    cli("train", "--data", str(tmp / "replab"), "--base", str(tmp / "base"), "--input-format", "entity+text",
        "--holdout", "entities", "--epochs", "1", "--learning-rate", "1e-3", "--out", str(tmp / "run"))
    return tmp


def test_curve_adds_each_entitys_earliest_tweets_and_scores_the_later_ones(unseen_run):
    tmp = unseen_run
    out = cli("curve", "--checkpoint", str(tmp / "run" / "best"), "--sizes", "0,4,8", "--pool", "8", "--sample", "20",
              "--epochs", "1", "--learning-rate", "1e-3", "--work", str(tmp / "work"), "--out", str(tmp / "report"))
    result = json.loads((tmp / "report" / "curve.json").read_text())
    assert result["entities"] == ["Acme"] and result["test_tweets"] == COUNTS[UNSEEN] - 8
    assert [(p["per_entity"], p["added"]) for p in result["points"]] == [(0, 0), (4, 4), (8, 8)]
    for p in result["points"]:
        assert p["metrics"]["n"] == result["test_with_polarity"] and p["metrics"]["relatedness"]["n"] == 58
    own = [json.loads(line) for line in (tmp / "work" / "own-k8.jsonl").read_text().splitlines()]
    assert [r["text"].rsplit(" ", 1)[1] for r in own] == [str(i) for i in range(8)]  # the earliest, in order
    assert {r["entity"] for r in own} == {"Acme"}
    summary = json.loads((tmp / "work" / "w1-k8" / "best" / "train_summary.json").read_text())
    assert summary["config"]["init"] == str(tmp / "run" / "best") and summary["data"]["sample"] == 20
    assert summary["validation_examples"] == 0  # the scored tweets never steer training
    replayed = summary["train_examples"] - 8
    assert 0 < replayed <= COUNTS[SEEN]  # the replay holds seen-entity tweets only: the unseen ones stay out
    assert (tmp / "report" / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| 8 | 1 |" in (tmp / "report" / "curve.md").read_text() and "polarity accuracy" in out
    # a second call resumes every run and scores the same
    cli("curve", "--checkpoint", str(tmp / "run" / "best"), "--sizes", "0,4,8", "--pool", "8", "--sample", "20",
        "--epochs", "1", "--learning-rate", "1e-3", "--work", str(tmp / "work"), "--out", str(tmp / "again"))
    assert json.loads((tmp / "again" / "curve.json").read_text())["points"] == result["points"]


def test_init_continues_from_the_checkpoint_and_keeps_its_text_settings(unseen_run, tmp_path):
    from safetensors.numpy import load_file

    tmp = unseen_run
    base = tmp / "run" / "best"
    cli("train", "--data", str(tmp / "replab"), "--init", str(base), "--sample", "30", "--epochs", "1", "--batch-size", "8",
        "--val-fraction", "0", "--gap-fraction", "0", "--learning-rate", "1e-3", "--out", str(tmp_path / "run"))
    best = tmp_path / "run" / "best"
    assert (best / "vocab.txt").read_bytes() == (base / "vocab.txt").read_bytes()
    assert (best / "text_settings.json").read_text() == (base / "text_settings.json").read_text()
    summary = json.loads((best / "train_summary.json").read_text())
    assert summary["train_examples"] == 30 and summary["config"]["input_format"] == "entity+text"
    assert summary["load"]["kept"] == 30 and summary["load"]["dropped"]["not among a seeded random 30 (--sample)"] > 0
    before, after = load_file(str(base / "model.safetensors")), load_file(str(best / "model.safetensors"))
    assert before.keys() == after.keys() and any((before[k] != after[k]).any() for k in before)
    assert (best / "related_head.safetensors").is_file()


@pytest.mark.parametrize("extra, message", [
    (["--base", "x"], "--base and --max-length do not apply"),
    (["--sample", "0"], "at least 1 example"),
])
def test_init_refuses_settings_that_do_not_apply(unseen_run, tmp_path, extra, message):
    args = ["train", "--data", str(unseen_run / "replab"), "--init", str(unseen_run / "run" / "best"), *extra,
            "--out", str(tmp_path / "run")]
    assert message in refused(*args)


def test_a_run_started_before_a_setting_existed_still_resumes(unseen_run, tmp_path):
    """Settings added since a run started (here --sample and --init) count as unset, so it resumes; a nested change
    is named."""
    import shutil

    shutil.copytree(unseen_run / "run", tmp_path / "run")
    run_file = tmp_path / "run" / "run.json"
    state = json.loads(run_file.read_text())
    del state["settings"]["data"]["sample"], state["settings"]["init"]
    run_file.write_text(json.dumps(state))
    args = ["train", "--data", str(unseen_run / "replab"), "--base", str(unseen_run / "base"), "--input-format",
            "entity+text", "--holdout", "entities", "--epochs", "1", "--learning-rate", "1e-3", "--out", str(tmp_path / "run")]
    assert "training finished earlier" in cli(*args)
    assert "(data.seed, seed)" in refused(*args, "--seed", "5")


def test_unseen_entity_figures_go_into_the_manifest_and_the_report(unseen_run):
    """package --unseen-entities stores the held-out entities' polarity and relatedness figures; /v1/model shows
    them (Bundle.summary) and `report` prints them next to the in-entity ones."""
    from app.bundle import Bundle

    tmp = unseen_run
    cli("package", "--checkpoint", str(tmp / "run" / "best"), "--unseen-entities", str(tmp / "run" / "best"),
        "--out", str(tmp / "bundles" / "dynamic-int8"), "--calibration", "10")
    metrics = Bundle.load(tmp / "bundles" / "dynamic-int8").summary()["metrics"]
    unseen, measured = metrics["unseen_entities"], json.loads((tmp / "run" / "best" / "validation.json").read_text())
    assert unseen["entities"] == ["Acme"] and "best epoch 1 of 1" in unseen["model"]  # names: the data has one
    # the trained entity's full name is read as its query; the held-out entity's is not known to this model
    assert Bundle.load(tmp / "bundles" / "dynamic-int8").entity_aliases == (("Zorblax Ltd", "Zorblax"),)
    for key in ("n", "accuracy", "macro_f1", "per_class"):
        assert unseen[key] == measured[key] and unseen["relatedness"][key] == measured["relatedness"][key]
    assert set(metrics["relatedness"]["per_class"]) == {"unrelated", "related"}
    cli("report", "--checkpoint", str(tmp / "run" / "best"), "--bundles", str(tmp / "bundles"),
        "--out", str(tmp / "report-variants"))
    report = (tmp / "report-variants" / "report.md").read_text()
    assert "Unseen entities (Acme)" in report and f"| {unseen['accuracy']:.4f}" in report
    threshold = Bundle.load(tmp / "bundles" / "dynamic-int8").related_threshold
    assert f"| float32 at {threshold} (the bundles': the highest macro-F1 on these tweets) |" in report
    assert f"| dynamic-int8 at {threshold} |" in report


def test_the_unseen_entities_polarity_takes_the_negative_offset(unseen_run, tmp_path):
    """package --negative-offset X with --unseen-entities: their polarity figures are the float model's labels with
    X on the negative logit (between their tweets' margins, so that some labels move), those without it beside."""
    import numpy as np

    from model_build.checkpoint import Checkpoint
    from model_build.scoring import encode_examples, predict, validation_metrics
    from tests.conftest import splitting_threshold

    run = unseen_run / "run" / "best"
    checkpoint = Checkpoint.load(run)
    tweets = checkpoint.data.splits()[1]
    encoder = checkpoint.encoder()
    logits, related = predict(checkpoint.model(), encoder, encode_examples(encoder, tweets))
    given = float(splitting_threshold((np.delete(logits, 2, axis=1).max(axis=1) - logits[:, 2]).round(6)))
    cli("package", "--checkpoint", str(run), "--unseen-entities", str(run), "--negative-offset", str(given),
        "--variants", "float32", "--calibration", "10", "--out", str(tmp_path / "bundle"))
    unseen = Bundle.load(tmp_path / "bundle").manifest()["metrics"]["unseen_entities"]
    moved, plain = (validation_metrics(tweets, logits + [0, 0, offset], related) for offset in (given, 0.0))
    assert moved["confusion"] != plain["confusion"]
    assert (unseen["confusion"], unseen["macro_f1"]) == (moved["confusion"], moved["macro_f1"])
    assert unseen["without_offset"] == {"accuracy": plain["accuracy"], "macro_f1": plain["macro_f1"],
                                        "negative_f1": plain["per_class"]["negative"]["f1"]}


def test_the_relatedness_threshold_is_chosen_on_the_unseen_entities_or_given(unseen_run, tmp_path):
    """package --unseen-entities sets the bundle's related_threshold to the lowest of those of highest relatedness
    macro-F1 on those entities' tweets (the float model trained without them) and records the figures there at it;
    --related-threshold sets it instead, and one outside (0, 1) is refused. The bundle's own relatedness figures are
    its verdicts at its threshold."""
    import numpy as np
    from sklearn.metrics import f1_score

    from app.bundle import Bundle
    from app.classifier import Classifier
    from model_build.checkpoint import Checkpoint
    from model_build.metrics import THRESHOLDS
    from model_build.scoring import encode_examples, predict
    from tests.conftest import splitting_threshold

    run = unseen_run / "run" / "best"
    package = ["package", "--checkpoint", str(run), "--unseen-entities", str(run), "--calibration", "10"]
    cli(*package, "--out", str(tmp_path / "chosen"))
    checkpoint = Checkpoint.load(run)
    tweets = [e for e in checkpoint.data.splits()[1] if e.related is not None]
    encoder = checkpoint.encoder()
    _, probability = predict(checkpoint.model(), encoder, encode_examples(encoder, tweets))
    gold = [int(e.related) for e in tweets]
    f1 = {t: f1_score(gold, (probability >= t).astype(int), average="macro") for t in THRESHOLDS}
    bundle = Bundle.load(tmp_path / "chosen")
    manifest = bundle.manifest()
    threshold = manifest["related_threshold"]
    assert bundle.related_threshold == threshold == min(t for t in THRESHOLDS if f1[t] == max(f1.values()))
    chosen = manifest["metrics"]["unseen_entities"]["relatedness_at_threshold"]
    assert (chosen["threshold"], chosen["macro_f1"], chosen["n"]) == (threshold, round(f1[threshold], 4), len(tweets))
    assert chosen["chosen"] == "the highest macro-F1 on these tweets"
    assert manifest["metrics"]["validation"]["relatedness"]["threshold"] == threshold

    served = Classifier(bundle, threads=1).classify([e.text for e in tweets], [e.entity for e in tweets])
    given = splitting_threshold(p.related for p in served)
    cli(*package, "--related-threshold", str(given), "--out", str(tmp_path / "given"))
    manifest = Bundle.load(tmp_path / "given").manifest()
    stated = manifest["metrics"]["unseen_entities"]["relatedness_at_threshold"]
    assert manifest["related_threshold"] == stated["threshold"] == given and stated["chosen"] == "given"
    figures = manifest["metrics"]["validation"]["relatedness"]
    about = [sum(p.related < given for p in served), sum(p.related >= given for p in served)]
    assert figures["threshold"] == given and np.sum(figures["confusion"], axis=0).tolist() == about
    assert about != [sum(p.related < 0.5 for p in served), sum(p.related >= 0.5 for p in served)]
    assert "between 0 and 1" in refused(*package, "--related-threshold", "1", "--out", str(tmp_path / "refused"))
    # A run of the recipe without the relatedness head cannot stand in for one with it, nor take a threshold.
    cli("train", "--data", str(unseen_run / "replab"), "--base", str(unseen_run / "base"), "--input-format",
        "entity+text", "--holdout", "entities", "--epochs", "1", "--related-weight", "0", "--out",
        str(tmp_path / "polarity"))
    polarity = str(tmp_path / "polarity" / "best")
    assert "lacks the relatedness head that" in refused("package", "--checkpoint", str(run), "--unseen-entities",
                                                        polarity, "--out", str(tmp_path / "refused"))
    assert "has no relatedness head" in refused("package", "--checkpoint", polarity, "--related-threshold", "0.5",
                                                "--out", str(tmp_path / "refused"))
    # Nor can a run reading the tweet alone, whose threshold would be chosen on another model's probabilities.
    cli("train", "--data", str(unseen_run / "replab"), "--base", str(unseen_run / "base"), "--input-format", "text",
        "--holdout", "entities", "--epochs", "1", "--out", str(tmp_path / "text"))
    said = refused("package", "--checkpoint", str(run), "--unseen-entities", str(tmp_path / "text" / "best"), "--out",
                   str(tmp_path / "refused"))
    assert said.endswith(f"differs from {run} in its input format: --unseen-entities is the same recipe on the same "
                         "data, trained without the unseen entities"), said
    assert not (tmp_path / "refused").exists()


def test_unseen_tweets_all_related_take_a_given_threshold_only(unseen_run, tmp_path):
    """No threshold can be chosen where the unseen entities' tweets are of one class: a one-line refusal, and
    --related-threshold packages the same run."""
    from app.bundle import Bundle

    write_replab(tmp_path / "replab", unseen_unrelated=False)
    cli("train", "--data", str(tmp_path / "replab"), "--base", str(unseen_run / "base"), "--input-format",
        "entity+text", "--holdout", "entities", "--epochs", "1", "--learning-rate", "1e-3", "--out", str(tmp_path / "run"))
    run = str(tmp_path / "run" / "best")
    package = ["package", "--checkpoint", run, "--unseen-entities", run, "--calibration", "10"]
    assert "unseen entities' tweets are all related; no threshold can be chosen on them (give --related-threshold)" \
        in refused(*package, "--out", str(tmp_path / "refused"))
    assert not (tmp_path / "refused").exists()
    cli(*package, "--related-threshold", "0.6", "--out", str(tmp_path / "given"))
    stated = Bundle.load(tmp_path / "given").manifest()["metrics"]["unseen_entities"]["relatedness_at_threshold"]
    assert stated["threshold"] == 0.6 and stated["chosen"] == "given"
    assert stated["per_class"]["related"]["support"] == stated["n"] > 0


def test_a_curve_report_that_fails_while_written_leaves_the_earlier_one_whole(tmp_path):
    """curve.json, curve.png and curve.md are replaced together or not at all."""
    from model_build.curve import write_curve

    metrics = {"accuracy": 0.5, "macro_f1": 0.4, "per_class": {"negative": {"f1": 0.3}}}
    result = {"entities": ["Acme"], "left_out": [], "spec": {"pool": 8}, "test_tweets": 10, "test_with_polarity": 8,
              "command": "curve", "points": [{"weight": 1, "per_entity": 0, "metrics": metrics}]}
    write_curve(result, tmp_path / "report")
    before = {p.name: p.read_bytes() for p in (tmp_path / "report").iterdir()}
    assert sorted(before) == ["curve.json", "curve.md", "curve.png"]
    broken = {**result, "points": [{"weight": 1, "per_entity": 4, "metrics": {"accuracy": 0.6, "macro_f1": 0.5}}]}
    with pytest.raises(KeyError):  # its table lacks the negative class's F1: after curve.json and curve.png
        write_curve(broken, tmp_path / "report")
    assert {p.name: p.read_bytes() for p in (tmp_path / "report").iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]  # no temporary folder left


def test_a_work_folder_inside_the_report_folder_is_refused_before_the_runs(unseen_run, tmp_path):
    """The report replaces --out whole: runs kept under it would go with it (or keep it from being written)."""
    common = ["curve", "--checkpoint", str(unseen_run / "run" / "best"), "--sizes", "0,4", "--pool", "8", "--out",
              str(tmp_path / "report")]
    for work in (tmp_path / "report", tmp_path / "report" / "runs"):
        assert "is inside --out" in refused(*common, "--work", str(work))
    assert not (tmp_path / "report").exists()
