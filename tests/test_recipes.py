"""Training recipes beyond plain fine-tuning, on tiny random BERTs and a tiny RepLab-layout tree: distillation
(``train --teacher``: the loss against soft targets, the teachers' predictions and their ensemble's validation
figures, the refusal of a teacher that saw held-out tweets, resuming), checkpoint averaging
(``train --average-last``), the linear probe before fine-tuning (``train --probe-first``), the sentiment task
(``train --sentiment``: its head trained, never served) and another language's tweets in training only
(``train --also-language``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from app.bundle import Bundle
from app.classifier import Classifier
from model_build.checkpoint import SUMMARY_FILE, Checkpoint
from model_build.data import LABELS
from model_build.distill import TARGETS_FILE, Distillation, TeacherTargets
from model_build.scoring import encode_examples, predict
from model_build.train import Targets, consistency_loss, reputation_loss
from tests.conftest import FIXTURES, cli, refused, stopped_after_save
from tests.test_curve import write_replab
from tests.test_data import write_stance

WEIGHTS = torch.tensor([1.0, 1.0, 2.0])


def _targets(y, soft=None):
    n = len(y)
    return Targets(torch.tensor(y), torch.full((n,), float("nan")), torch.ones(n), soft,
                   None if soft is None else torch.full((n,), float("nan")))


def test_with_all_weight_on_the_teachers_the_gold_labels_do_not_count_and_their_own_belief_is_the_minimum():
    logits = torch.tensor([[2.0, 0.1, -1.0], [0.0, 0.5, 0.3]], requires_grad=True)
    soft = torch.softmax(logits.detach() / 2, dim=-1)
    everything = Distillation(("t",), weight=1.0, temperature=2.0)
    a = reputation_loss(logits, None, _targets([0, 2], soft), WEIGHTS, 1.0, everything)
    b = reputation_loss(logits, None, _targets([1, -100], soft), WEIGHTS, 1.0, everything)
    assert torch.equal(a, b)
    (grad,) = torch.autograd.grad(a, logits)
    assert grad.abs().max() < 1e-6  # soft cross-entropy is least where the student already matches the teachers
    half = reputation_loss(logits, None, _targets([0, 2], soft), WEIGHTS, 1.0, Distillation(("t",), weight=0.5))
    hard = reputation_loss(logits, None, _targets([0, 2]), WEIGHTS, 1.0, None)
    assert not torch.isclose(half, hard) and not torch.isclose(half, a)


def test_label_smoothing_penalises_confidence_in_the_gold_label():
    confident = torch.tensor([[9.0, 0.0, 0.0]])
    plain = reputation_loss(confident, None, _targets([0]), WEIGHTS, 1.0, None)
    smoothed = reputation_loss(confident, None, _targets([0]), WEIGHTS, 1.0, None, label_smoothing=0.1)
    assert plain < 1e-3 < smoothed
    (grad,) = torch.autograd.grad(reputation_loss(confident.requires_grad_(), None, _targets([0]), WEIGHTS, 1.0, None,
                                                  label_smoothing=0.1), confident)
    assert grad[0, 0] > 0  # pushes the gold logit down from overconfidence


def test_focal_loss_shrinks_the_loss_of_confident_tweets_more_than_that_of_misclassified_ones():
    easy, hard = torch.tensor([[3.0, 0.0, 0.0]]), torch.tensor([[0.0, 3.0, 0.0]])
    plain = [reputation_loss(x, None, _targets([0]), WEIGHTS, 1.0, None) for x in (easy, hard)]
    focal = [reputation_loss(x, None, _targets([0]), WEIGHTS, 1.0, None, focal_gamma=2.0) for x in (easy, hard)]
    assert all(f < p for f, p in zip(focal, plain))
    assert focal[0] / plain[0] < 0.05 < 0.5 < focal[1] / plain[1]
    certain = torch.tensor([[40.0, 0.0, 0.0]], requires_grad=True)  # the gold probability rounds to 1
    (grad,) = torch.autograd.grad(reputation_loss(certain, None, _targets([0]), WEIGHTS, 1.0, None, focal_gamma=0.5),
                                  certain)
    assert torch.isfinite(grad).all()


def test_the_r_drop_consistency_is_the_symmetric_kl_over_the_tweets_with_a_polarity_label():
    first = torch.tensor([[2.0, 0.1, -1.0], [0.0, 0.5, 0.3], [5.0, 0.0, 0.0]])
    second = torch.tensor([[1.0, 0.4, -0.5], [0.2, 0.1, 0.9], [0.0, 0.0, 5.0]])
    targets = Targets(torch.tensor([0, 2, -100]), torch.full((3,), float("nan")), torch.tensor([1.0, 3.0, 1.0]))
    p, q = (torch.softmax(x, -1).numpy().astype(np.float64) for x in (first, second))
    kl = [(np.sum(a * np.log(a / b)) + np.sum(b * np.log(b / a))) / 2 for a, b in zip(p[:2], q[:2])]
    assert float(consistency_loss(first, second, targets)) == pytest.approx((kl[0] + 3 * kl[1]) / 4, rel=1e-5)
    assert float(consistency_loss(first, first, targets)) == 0
    unlabelled = Targets(torch.tensor([-100] * 3), targets.related, targets.weight)
    assert float(consistency_loss(first, second, unlabelled)) == 0


def test_under_r_drop_the_trainer_loss_is_the_mean_of_both_copies_losses_plus_alpha_times_their_consistency():
    """The Trainer's loss on recorded logits, one row per copy of a doubled batch: both copies' losses (polarity with
    class weights and smoothing, relatedness, sentiment) averaged, plus ``rdrop`` x the consistency of the two."""
    from types import SimpleNamespace

    from model_build.train import _trainer_class

    torch.manual_seed(0)
    n = 3
    outputs = [torch.randn(2 * n, 3, requires_grad=True), torch.randn(2 * n, 1), torch.randn(2 * n, 3)]  # polarity,
    # relatedness and sentiment logits
    seen = []

    class Recorded:
        training = True

        def outputs(self, **inputs):
            seen.append({k: v.clone() for k, v in inputs.items()})
            return outputs

    targets = Targets(torch.tensor([0, -100, 2]), torch.tensor([1.0, 0.0, float("nan")]), torch.tensor([1.0, 2.0, 1.0]),
                      sentiment=torch.tensor([-100, 1, -100]))
    ids = torch.arange(2 * 5).reshape(2, 5)[[0, 1, 0]]
    trainer = SimpleNamespace(rdrop=0.5, class_weights=WEIGHTS, related_weight=0.7, distillation=None,
                              label_smoothing=0.1, focal_gamma=0.0, sentiment_weight=0.5)
    loss = _trainer_class().compute_loss(trainer, Recorded(), {
        "input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": targets.polarity,
        "related": targets.related, "weight": targets.weight, "sentiment": targets.sentiment})
    assert torch.equal(seen[0]["input_ids"], torch.cat([ids, ids]))
    halves = [[x[i * n:(i + 1) * n] for x in outputs] for i in (0, 1)]
    each = [reputation_loss(p, r, targets, WEIGHTS, 0.7, None, label_smoothing=0.1, sentiment=z, sentiment_weight=0.5)
            for p, r, z in halves]
    consistency = consistency_loss(halves[0][0], halves[1][0], targets)
    expected = (each[0] + each[1]) / 2 + 0.5 * consistency
    assert consistency.item() > 0.01
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    (grad,), (expected_grad,) = (torch.autograd.grad(x, outputs[0]) for x in (loss, expected))
    torch.testing.assert_close(grad, expected_grad)  # through both copies, as the paper's loss


def test_the_sentiment_task_adds_its_weighted_loss_where_a_sentiment_label_is_known():
    logits = torch.tensor([[2.0, 0.1, -1.0], [0.0, 0.5, 0.3]])
    sentiment = torch.tensor([[0.0, 0.0, 3.0], [1.0, 0.0, 0.0]])
    base = _targets([0, -100])
    with_labels = Targets(base.polarity, base.related, base.weight, sentiment=torch.tensor([-100, 2]))
    plain = reputation_loss(logits, None, base, WEIGHTS, 1.0, None)
    unlabelled = reputation_loss(logits, None, base, WEIGHTS, 1.0, None, sentiment=sentiment, sentiment_weight=0.5)
    assert torch.equal(plain, unlabelled)
    extra = torch.nn.functional.cross_entropy(sentiment[1:], torch.tensor([2]))
    assert torch.isclose(reputation_loss(logits, None, with_labels, WEIGHTS, 1.0, None, sentiment=sentiment,
                                         sentiment_weight=0.5),
                         plain + 0.5 * extra)


def test_teacher_probabilities_are_averaged_after_softening():
    logits = np.array([[[4.0, 0.0, 0.0]], [[0.0, 0.0, 4.0]]])
    targets = TeacherTargets(logits, np.array([np.nan]))
    assert np.allclose(targets.soft(1.0), targets.soft(1.0)[0, ::-1])  # symmetric teachers, symmetric mean
    assert targets.soft(4.0)[0, 0] < targets.soft(1.0)[0, 0]  # a higher temperature flattens
    assert np.allclose(targets.soft(2.0).sum(-1), 1)


@pytest.fixture(scope="module")
def teachers(tmp_path_factory, tiny_base):
    """Two tiny teachers on the time-gap split: seed 1 reading [CLS] (the default), seed 2 the tokens' mean."""
    tmp = tmp_path_factory.mktemp("distill")
    write_replab(tmp / "replab")
    (tmp / "base").symlink_to(tiny_base)
    common = ["train", "--data", str(tmp / "replab"), "--base", str(tmp / "base"), "--epochs", "1",
              "--learning-rate", "1e-3", "--batch-size", "8"]
    for seed, pooling in ((1, []), (2, ["--pooling", "mean"])):
        cli(*common, "--seed", str(seed), *pooling, "--out", str(tmp / f"t{seed}"))
    return tmp, common


def test_a_run_is_scored_once_on_its_time_gap_and_a_finished_one_without_it_gets_it(teachers, tmp_path):
    """The gap's tweets come between training and validation in each entity's time order; the summary's ``gap``
    figures are the checkpoint's own predictions on them."""
    from model_build.data import example_key
    from model_build.scoring import validation_metrics

    tmp, common = teachers
    best = Checkpoint.load(tmp / "t1" / "best")
    train, gap, val = best.data.partition(best.data.load()[0])
    assert gap and {example_key(e) for e in gap}.isdisjoint({example_key(e) for e in train + val})
    for entity in {e.entity_id for e in gap}:
        times = [[e.timestamp for e in part if e.entity_id == entity] for part in (train, gap, val)]
        assert max(times[0]) < min(times[1]) and max(times[1]) < min(times[2])
    encoder = best.encoder()
    logits, related = predict(best.model(), encoder, encode_examples(encoder, gap))
    assert best.summary["gap"] == json.loads(json.dumps(validation_metrics(gap, logits, related)))
    assert best.summary["gap"]["n"] == sum(e.label is not None for e in gap)
    run = tmp_path / "t1"
    shutil.copytree(tmp / "t1", run)
    summary = json.loads((run / "best" / SUMMARY_FILE).read_text())
    del summary["gap"]  # as a run finished before the gap was scored
    (run / "best" / SUMMARY_FILE).write_text(json.dumps(summary))
    assert "gap tweets (" in cli(*common, "--seed", "1", "--out", str(run))
    assert Checkpoint.load(run / "best").summary["gap"] == best.summary["gap"]
    assert "gap tweets (" not in cli(*common, "--seed", "1", "--out", str(run))  # once
    cli(*common, "--holdout", "entities", "--out", str(tmp_path / "entities"))  # no gap with unseen entities held out
    assert "gap" not in Checkpoint.load(tmp_path / "entities" / "best").summary


def test_the_pooling_chosen_is_the_checkpoints(teachers, tmp_path):
    from model_build.checkpoint import Checkpoint
    from model_build.settings import Pooling

    tmp, common = teachers
    for run, pooling in (("t1", Pooling.CLS), ("t2", Pooling.MEAN)):
        best = Checkpoint.load(tmp / run / "best")
        assert Pooling.of(best.model().config) is pooling and best.summary["pooling"] == pooling.value
    # --init keeps its checkpoint's pooling, and the summary says which
    cli("train", "--data", str(tmp / "replab"), "--init", str(tmp / "t2" / "best"), "--epochs", "1",
        "--learning-rate", "1e-3", "--batch-size", "8", "--out", str(tmp_path / "from-t2"))
    assert Checkpoint.load(tmp_path / "from-t2" / "best").summary["pooling"] == "mean"


@pytest.mark.parametrize("pooling, labels_read, related_reads", [
    ("cls", "cls", "cls"), ("mean", "mean", "mean"), ("mean-cls", "mean", "cls")])
def test_each_head_reads_what_its_pooling_says(teachers, pooling, labels_read, related_reads):
    """Polarity and sentiment read the tokens' mean (padding left out) or [CLS] through the pooler, relatedness
    likewise; where both read the same, one tensor (one dropout draw, as before mean-cls existed)."""
    from model_build.model import ReputationModel
    from model_build.settings import Pooling

    tmp, _ = teachers
    model = ReputationModel.from_base(str(tmp / "base"), LABELS, related=True, sentiment=True,
                                      pooling=Pooling(pooling)).eval()
    ids = torch.randint(5, model.config.vocab_size, (3, 9))
    mask = torch.ones_like(ids)
    mask[1, 4:] = mask[2, 6:] = 0
    inputs = {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}
    with torch.no_grad():
        out = model.classifier.bert(**inputs)
        m = mask.unsqueeze(-1).float()
        read = {"cls": out.pooler_output, "mean": (out.last_hidden_state * m).sum(1) / m.sum(1)}
        labels, related = model.pooled(**inputs)
        polarity_logits, related_logits, sentiment_logits = model.outputs(**inputs)
        polarity_head, related_head, sentiment_head = model.heads()
        assert torch.allclose(polarity_logits, polarity_head(read[labels_read]), atol=1e-5)
        assert torch.allclose(sentiment_logits, sentiment_head(read[labels_read]), atol=1e-5)
        assert torch.allclose(related_logits, related_head(read[related_reads]), atol=1e-5)
        assert (related is labels) == (labels_read == related_reads)
        model.train()  # in training, one dropout draw where both read the same (cls and mean train as before)
        torch.manual_seed(7)
        trained = model.outputs(**inputs)
        torch.manual_seed(7)
        labels, related = model.pooled(**inputs)
        dropped = model.classifier.dropout(labels)
        dropped_related = dropped if labels_read == related_reads else model.classifier.dropout(related)
        assert torch.equal(trained[0], polarity_head(dropped)) and torch.equal(trained[2], sentiment_head(dropped))
        assert torch.equal(trained[1], related_head(dropped_related))


def test_a_config_without_pooling_reads_cls_and_an_unknown_one_is_refused():
    from transformers import BertConfig

    from model_build.errors import BuildError
    from model_build.settings import Pooling

    assert Pooling.of(BertConfig()) is Pooling.CLS  # models fine-tuned before the choice existed
    with pytest.raises(BuildError, match="reputation_pooling 'max' is not one of cls, mean, mean-cls"):
        Pooling.of(BertConfig(reputation_pooling="max"))


def test_the_probe_sets_each_head_to_its_logistic_regression_on_the_rows_with_its_label(teachers):
    from model_build.errors import BuildError
    from model_build.model import ReputationModel
    from model_build.probe import LinearProbe, fit_heads

    tmp, _ = teachers
    model = ReputationModel.from_base(str(tmp / "base"), LABELS, related=True, sentiment=True)
    rng = np.random.default_rng(0)
    n, hidden = 300, model.config.hidden_size
    features, read_by_related = rng.normal(size=(2, n, hidden)).astype(np.float32)  # each head fitted on its own
    polarity = np.where(np.arange(n) % 4 == 3, -100, features[:, :3].argmax(1))  # a quarter without polarity
    related = np.where(np.arange(n) % 5 == 0, np.nan, (read_by_related[:, 3] > 0).astype(float))
    sentiment = np.where(polarity < 0, (features[:, 4:7]).argmax(1), -100)  # sentiment only where polarity is not
    weight = rng.uniform(0.2, 2.0, size=n)
    rows = [{"labels": int(y), "related": float(r), "sentiment": int(z), "weight": float(w)}
            for y, r, z, w in zip(polarity, related, sentiment, weight)]
    class_weight = np.array([0.5, 1.0, 1.5])
    fitted = fit_heads(model, (features, read_by_related), rows, class_weight, LinearProbe())
    with torch.no_grad():
        logits = [head(torch.from_numpy(x)).numpy()
                  for head, x in zip(model.heads(), (features, read_by_related, features))]
    for name, scores, labels in (("polarity", logits[0].argmax(1), polarity),
                                 ("related", (logits[1][:, 0] > 0).astype(int), related),
                                 ("sentiment", logits[2].argmax(1), sentiment)):
        known = ~np.isnan(labels.astype(float)) & (labels >= 0)
        accuracy = float((scores[known] == labels[known]).mean())
        assert fitted[name] == pytest.approx(accuracy, abs=1e-4) and accuracy > 0.9, name  # the heads are the fits
    # weighted as the loss weights them: class weight x row weight
    from sklearn.linear_model import LogisticRegression

    known = polarity >= 0
    direct = LogisticRegression(max_iter=2000).fit(features[known], polarity[known],
                                                   sample_weight=class_weight[polarity[known]] * weight[known])
    assert np.allclose(model.heads()[0].weight.detach().numpy(), direct.coef_, atol=1e-4)
    rows = [{**r, "labels": r["labels"] % 2 if r["labels"] >= 0 else -100} for r in rows]  # no third label
    with pytest.raises(BuildError, match="polarity head's training tweets lack one of its 3 labels"):
        fit_heads(model, (features, features), rows, np.ones(3), LinearProbe())


@pytest.mark.parametrize("pooling", ["cls", "mean-cls"])
def test_fine_tuning_starts_from_the_probed_heads_and_records_the_probe(teachers, tmp_path, pooling):
    """``train --probe-first`` at a learning rate of 0: what fine-tuning ends with is what the probe fitted, each
    head on what it reads (mean-cls: the relatedness head on [CLS], the polarity head on the tokens' mean)."""
    from safetensors.numpy import load_file

    tmp, common = teachers
    args = [*common, "--seed", "1", "--pooling", pooling, "--probe-first", "--learning-rate", "0",
            "--out", str(tmp_path / "lp")]
    assert "linear probe: training accuracy" in cli(*args)
    best = Checkpoint.load(tmp_path / "lp" / "best")
    probe = best.summary["probe"]
    assert probe == json.loads((tmp_path / "lp" / "probe.json").read_text())
    assert set(probe["training_accuracy"]) == {"polarity", "related"} and best.summary["config"]["probe"] == {"c": 1.0}
    measured = best.summary["validation"]
    assert probe["validation"] == {"accuracy": measured["accuracy"], "macro_f1": measured["macro_f1"],
                                   "related_accuracy": measured["relatedness"]["accuracy"]}
    train = best.data.partition(best.data.load()[0])[0]  # the probe's training accuracy is the served model's
    encoder = best.encoder()
    logits, related = predict(best.model(), encoder, encode_examples(encoder, train))
    known = [i for i, e in enumerate(train) if e.related is not None]
    assert probe["training_accuracy"]["related"] == round(
        float(np.mean([(related[i] > 0.5) == train[i].related for i in known])), 4)
    labelled = [i for i, e in enumerate(train) if e.label is not None]
    assert probe["training_accuracy"]["polarity"] == round(
        float(np.mean([LABELS[logits[i].argmax()] == train[i].label for i in labelled])), 4)
    cli(*[a for a in args if a != "--probe-first"][:-1], str(tmp_path / "plain"))  # the same run, heads as drawn
    plain = load_file(str(tmp_path / "plain" / "best" / "model.safetensors"))["classifier.weight"]
    assert not np.allclose(load_file(str(best.path / "model.safetensors"))["classifier.weight"], plain)


@pytest.mark.parametrize("arch", ["bert", "mobilebert"])
def test_layer_rates_fall_by_the_decay_from_the_heads_down_to_the_embeddings(tmp_path, arch):
    from model_build.model import ReputationModel

    cli("init-random", "--arch", arch, "--size", "tiny", "--vocab", str(FIXTURES / "vocab.txt"), "--out",
        str(tmp_path / "base"))
    model = ReputationModel.from_base(str(tmp_path / "base"), LABELS, related=True, sentiment=True)
    rates, layers = model.layer_rates(0.5), model.config.num_hidden_layers
    assert rates.keys() == dict(model.named_parameters()).keys() and layers >= 2
    for name, rate in rates.items():
        if ".embeddings." in name:
            assert rate == 0.5 ** (layers + 1), name
        elif f".layer.{layers - 1}." in name:
            assert rate == 0.5, name
        elif ".layer.0." in name:
            assert rate == 0.5 ** layers, name
        elif name.startswith(("related_head.", "sentiment_head.", "classifier.classifier.")) or ".pooler." in name:
            assert rate == 1, name
    assert sorted(set(rates.values())) == [0.5 ** k for k in range(layers + 1, -1, -1)]


def test_under_layer_decay_fine_tuning_moves_each_layer_less_than_the_one_above(teachers, tmp_path):
    """``train --layer-decay 0.01`` against the same run with one learning rate: the heads move as much, each layer
    below about a hundredth of the one above (Adam's steps scale with the rate, whatever the gradient)."""
    from safetensors.numpy import load_file

    from model_build.model import ReputationModel

    tmp, common = teachers
    base = {k: v.detach().numpy() for k, v in
            ReputationModel.from_base(str(tmp / "base"), LABELS, related=True).classifier.state_dict().items()}

    def moved(run: Path) -> list[float]:
        """How far the run moved the embeddings and each encoder layer from where they started."""
        weights = load_file(str(run / "best" / "model.safetensors"))
        layers = sorted({int(k.split(".layer.")[1].split(".")[0]) for k in weights if ".layer." in k})
        parts = [".embeddings.", *(f".layer.{i}." for i in layers)]
        return [max(float(np.abs(weights[k] - base[k]).max()) for k in weights if part in k) for part in parts]

    cli(*common, "--seed", "1", "--layer-decay", "0.01", "--out", str(tmp_path / "decayed"))
    cli(*common, "--seed", "1", "--learning-rate", "0", "--out", str(tmp_path / "start"))  # the heads as drawn
    decayed, plain = moved(tmp_path / "decayed"), moved(tmp / "t1")
    assert all(m > 1e-4 for m in plain), plain
    assert all(below < 0.05 * above for below, above in zip(decayed, decayed[1:])), decayed
    assert decayed[-1] < 0.05 * plain[-1]  # the top layer at a hundredth of the rate
    head = {run: load_file(str(run / "best" / "model.safetensors"))["classifier.weight"]
            for run in (tmp_path / "decayed", tmp / "t1", tmp_path / "start")}
    start = head.pop(tmp_path / "start")
    assert np.abs(head[tmp_path / "decayed"] - start).max() > 0.5 * np.abs(head[tmp / "t1"] - start).max()


def test_r_drop_trains_as_plain_fine_tuning_without_dropout_and_apart_from_it_with_dropout(teachers, tmp_path):
    """``train --rdrop``: the batch passed twice, the mean of the two passes' losses plus the consistency term. Without
    dropout the passes agree (no consistency loss, no gradient from it) and the run is the plain run's; with dropout
    it is not."""
    from safetensors.numpy import load_file

    tmp, common = teachers
    still = tmp_path / "still"
    shutil.copytree(tmp / "base", still)
    config = json.loads((still / "config.json").read_text())
    assert config["hidden_dropout_prob"] > 0
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (still / "config.json").write_text(json.dumps(config))
    args = [*common, "--seed", "1"]
    args[args.index("--base") + 1] = str(still)
    weights = {}
    for name, extra in (("plain", []), ("rdrop", ["--rdrop", "1"])):
        cli(*args, *extra, "--out", str(tmp_path / name))
        weights[name] = load_file(str(tmp_path / name / "best" / "model.safetensors"))
    assert Checkpoint.load(tmp_path / "rdrop" / "best").summary["config"]["rdrop"] == 1.0
    for key, value in weights["plain"].items():
        np.testing.assert_allclose(weights["rdrop"][key], value, atol=2e-5, err_msg=key)
    cli(*common, "--seed", "1", "--rdrop", "1", "--out", str(tmp_path / "dropout"))
    dropped = load_file(str(tmp_path / "dropout" / "best" / "model.safetensors"))["classifier.weight"]
    plain = load_file(str(tmp / "t1" / "best" / "model.safetensors"))["classifier.weight"]
    assert np.abs(dropped - plain).max() > 1e-3


def test_a_soup_is_the_mean_of_its_runs_weights_validated_and_packaged_as_one_model(teachers, tmp_path):
    """``soup``: the element-wise mean of seeds' weights (heads too), its own validation and gap figures, a checkpoint
    that packages like any other and says it is a soup; one run given twice is refused."""
    from safetensors.numpy import load_file

    from model_build.scoring import validation_metrics

    tmp, common = teachers
    cli(*common, "--seed", "3", "--out", str(tmp_path / "t3"))
    runs = [tmp / "t1" / "best", tmp_path / "t3" / "best"]
    out = cli("soup", "--checkpoint", str(runs[0]), "--checkpoint", str(runs[1]), "--out", str(tmp_path / "soup"))
    soup = Checkpoint.load(tmp_path / "soup" / "best")
    assert "soup of 2: validation accuracy" in out and "gap tweets (" in out
    for name in ("model.safetensors", "related_head.safetensors"):
        first, second = (load_file(str(run / name)) for run in runs)
        mean = load_file(str(soup.path / name))
        assert mean.keys() == first.keys() and any(not np.allclose(first[k], second[k]) for k in first), name
        for key, value in mean.items():
            assert np.allclose(value, (first[key] + second[key]) / 2, atol=1e-6), key
    assert [(i["checkpoint"], i["seed"]) for i in soup.summary["soup"]] == [(str(runs[0]), 1), (str(runs[1]), 3)]
    assert soup.summary["config"]["seed"] == [1, 3] and "history" not in soup.summary
    _, gap, val = soup.data.parts()
    encoder = soup.encoder()
    for part, key in ((val, "validation"), (gap, "gap")):
        logits, related = predict(soup.model(), encoder, encode_examples(encoder, part))
        assert soup.summary[key] == json.loads(json.dumps(validation_metrics(part, logits, related))), key
    cli("package", "--checkpoint", str(soup.path), "--out", str(tmp_path / "bundle"), "--calibration", "10")
    training = Bundle.load(tmp_path / "bundle").manifest()["training"]
    assert training["config"]["out_dir"] == str(tmp_path / "soup") and training["soup"] == soup.summary["soup"]
    made = (tmp_path / "soup" / "best" / "model.safetensors").stat().st_mtime_ns
    again = cli("soup", "--checkpoint", str(runs[0]), "--checkpoint", str(runs[1]), "--out", str(tmp_path / "soup"))
    assert "soup made earlier" in again and (tmp_path / "soup" / "best" / "model.safetensors").stat().st_mtime_ns == made
    summary_file = soup.path / SUMMARY_FILE  # cut off after the soup was saved, before its gap was scored
    summary_file.write_text(json.dumps({k: v for k, v in soup.summary.items() if k != "gap"}))
    again = cli("soup", "--checkpoint", str(runs[0]), "--checkpoint", str(runs[1]), "--out", str(tmp_path / "soup"))
    assert "gap tweets (" in again and Checkpoint.load(soup.path).summary["gap"] == soup.summary["gap"]
    # one run twice "averaged" to itself, a soup in name only: refused, as an ensemble of it is
    assert refused("soup", "--checkpoint", str(runs[0]), "--checkpoint", f"{runs[0]}/", "--out", str(tmp_path / "same")
                   ).endswith(f"checkpoint {runs[0]}, {runs[0]}/ given twice: a soup averages different runs")
    assert not (tmp_path / "same").exists()


def test_a_soup_of_runs_whose_data_changed_since_is_refused(teachers, tmp_path):
    """Runs whose data now splits otherwise than when they trained are refused, as every other command refuses
    them: the soup's figures would be of another split than the one its summary names."""
    _, common = teachers
    data = tmp_path / "replab"
    write_replab(data)
    for seed in ("1", "3"):
        cli(*[str(data) if arg.endswith("replab") else arg for arg in common], "--seed", seed, "--out",
            str(tmp_path / seed))
    shutil.rmtree(data)
    write_replab(data, unseen_unrelated=False)  # fewer tweets of one entity
    assert "these tweets split otherwise than when the run trained" in refused(
        "soup", "--checkpoint", str(tmp_path / "1" / "best"), "--checkpoint", str(tmp_path / "3" / "best"),
        "--out", str(tmp_path / "soup"))
    assert not (tmp_path / "soup").exists()


def test_a_soup_of_runs_on_everything_has_no_figures_and_takes_their_place(teachers, tmp_path):
    """Runs trained on every tweet (as a bundle's are) soup into a checkpoint without validation figures."""
    tmp, common = teachers
    for seed in ("1", "3"):
        cli(*common, "--seed", seed, "--val-fraction", "0", "--gap-fraction", "0", "--out", str(tmp_path / seed))
    cli("soup", "--checkpoint", str(tmp_path / "1" / "best"), "--checkpoint", str(tmp_path / "3" / "best"),
        "--out", str(tmp_path / "soup"))
    soup = Checkpoint.load(tmp_path / "soup" / "best")
    assert "validation" not in soup.summary and "gap" not in soup.summary
    assert [i["validation"] for i in soup.summary["soup"]] == [{"accuracy": None, "macro_f1": None}] * 2
    again = cli("soup", "--checkpoint", str(tmp_path / "1" / "best"), "--checkpoint", str(tmp_path / "3" / "best"),
                "--out", str(tmp_path / "soup"))
    assert "nothing to do" in again and "score its gap" not in again  # no gap: the data is not read again


def test_a_soup_of_different_recipes_or_of_one_run_or_over_a_run_is_refused(teachers, tmp_path):
    tmp, common = teachers
    t1, t2 = str(tmp / "t1" / "best"), str(tmp / "t2" / "best")  # [CLS] and the tokens' mean
    soup = ["soup", "--out", str(tmp_path / "s")]
    assert "a soup averages at least 2 checkpoints, got 1" in refused(*soup, "--checkpoint", t1)
    line = refused(*soup, "--checkpoint", t1, "--checkpoint", t2)
    assert f"checkpoint {t2} differs from {t1} in its pooling, --pooling: a soup averages runs of one recipe" in line
    cli(*common, "--seed", "3", "--label-smoothing", "0.1", "--out", str(tmp_path / "ls"))
    assert "in its --label-smoothing: a soup" in refused(*soup, "--checkpoint", t1, "--checkpoint",
                                                          str(tmp_path / "ls" / "best"))
    assert not (tmp_path / "s").exists()
    assert "exists and is not this soup: give a new --out (a soup never replaces a run)" in refused(
        "soup", "--checkpoint", t1, "--checkpoint", t2, "--out", str(tmp / "t1"))
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")  # a folder of the user's: refused, left as it is
    assert "mine holds other files and no soup (best/): give a new or empty folder" in refused(
        "soup", "--checkpoint", t1, "--checkpoint", t2, "--out", str(tmp_path / "mine"))
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]


def test_an_ensemble_is_scored_on_the_first_runs_held_out_tweets_with_its_members_averaged_probabilities(teachers,
                                                                                                        tmp_path):
    """``ensemble``: the mean of the members' softmax, the offset on the negative logit, on the first member's validation
    and gap tweets; each member's own figures beside it; a member that trained on those tweets refused."""
    from scipy.special import softmax

    from model_build.offsets import in_short
    from model_build.scoring import validation_metrics

    tmp, common = teachers
    t1, t2 = (tmp / name / "best" for name in ("t1", "t2"))
    _, gap, val = Checkpoint.load(t1).parts()
    scored = {}
    for name, tweets in (("validation", val), ("gap", gap)):
        for path in (t1, t2):
            member = Checkpoint.load(path)
            encoder = member.encoder()
            scored.setdefault(name, []).append(predict(member.model(), encoder, encode_examples(encoder, tweets)))
    assert LABELS[2] == "negative"

    def labels(logits, offset):
        return (logits + np.array([0, 0, offset])).argmax(1)

    def mean_logits(name):
        return np.log(np.mean([softmax(logits, axis=1) for logits, _ in scored[name]], 0))

    # an offset at which the averaged probabilities label validation otherwise than either member alone
    offset = next(round(x, 1) for x in np.arange(-3, 3, 0.1) if all(
        (labels(mean_logits("validation"), x) != labels(logits, x)).any() for logits, _ in scored["validation"]))
    cli("ensemble", "--checkpoint", str(t1), "--checkpoint", str(t2), "--negative-offset", str(offset),
        "--json", str(tmp_path / "e.json"))
    result = json.loads((tmp_path / "e.json").read_text())
    for name, tweets in (("validation", val), ("gap", gap)):
        moved = mean_logits(name) + np.array([0, 0, offset])
        expected = validation_metrics(tweets, moved, np.mean([related for _, related in scored[name]], 0))
        assert result[name] == json.loads(json.dumps(expected)), name
        members = [in_short(validation_metrics(tweets, logits + np.array([0, 0, offset]), None))
                   for logits, _ in scored[name]]
        assert [m[name] for m in result["members"]] == members
    assert result["negative_offset"] == offset and result["offset"] == "given"
    chosen = cli("ensemble", "--checkpoint", str(t1), "--checkpoint", str(t2), "--negative-offset", "chosen")
    assert chosen.splitlines()[-1].startswith("ensemble of 2, probabilities averaged, ")
    # scored on another split, half of it the members' training tweets: refused
    cli(*common, "--seed", "3", "--val-fraction", "0.5", "--gap-fraction", "0", "--out", str(tmp_path / "half"))
    line = refused("ensemble", "--checkpoint", str(tmp_path / "half" / "best"), "--checkpoint", str(t1))
    assert line.startswith(f"error: ensemble member {t1} was trained on ") and "of the held-out tweets" in line
    assert "at least 2 checkpoints, got 1" in refused("ensemble", "--checkpoint", str(t1))
    assert f"checkpoint {t1}, {t1}/ given twice" in refused("ensemble", "--checkpoint", str(t1), "--checkpoint", f"{t1}/")


def test_a_probed_run_cut_off_resumes_without_fitting_again_and_one_started_over_fits_again(teachers, tmp_path):
    tmp, common = teachers
    args = [*common, "--seed", "1", "--probe-first", "--checkpoint-every", "2", "--out", str(tmp_path / "lp")]

    with stopped_after_save():
        cli(*args)
    first = json.loads((tmp_path / "lp" / "probe.json").read_text())
    out = cli(*args)
    assert "resuming from checkpoint-2" in out and "linear probe" not in out
    assert Checkpoint.load(tmp_path / "lp" / "best").summary["probe"] == first
    shutil.rmtree(tmp_path / "lp")
    assert "linear probe: training accuracy" in cli(*args)  # a run that starts over fits again


def test_a_student_learns_from_the_teachers_and_records_their_ensemble(teachers):
    tmp, common = teachers
    args = [*common, "--seed", "3", "--teacher", str(tmp / "t1" / "best"), "--teacher", str(tmp / "t2" / "best"),
            "--distill-weight", "0.7", "--temperature", "3", "--out", str(tmp / "student")]
    out = cli(*args)
    assert "teachers' ensemble on validation" in out
    summary = json.loads((tmp / "student" / "best" / "train_summary.json").read_text())
    assert summary["config"]["distillation"] == {"teachers": [str(tmp / "t1" / "best"), str(tmp / "t2" / "best")],
                                                 "weight": 0.7, "temperature": 3.0}
    n_train = summary["train_examples"]
    with np.load(tmp / "student" / TARGETS_FILE) as saved:
        logits, related = saved["logits"], saved["related"]
    assert logits.shape[0] == 2 and logits.shape[2] == 3 and not np.isnan(related).any()
    # the teachers' predictions on the validation tweets are the ones they saved for their own validation
    val_logits = [np.load(tmp / f"t{s}" / "best" / "validation_logits.npy") for s in (1, 2)]
    val_rows = logits.shape[1] - n_train
    assert val_rows == len(val_logits[0]) and all(np.allclose(logits[i, n_train:], v, atol=1e-4)
                                                  for i, v in enumerate(val_logits))
    ensemble = summary["teachers"]["validation"]
    mean = np.mean([np.exp(v) / np.exp(v).sum(-1, keepdims=True) for v in val_logits], 0)
    _, val_set = Checkpoint.load(tmp / "student" / "best").data.splits()
    rows = [i for i, e in enumerate(val_set) if e.label is not None]
    gold = np.array([LABELS.index(val_set[i].label) for i in rows])
    assert ensemble["n"] == len(rows) and ensemble["relatedness"]["n"] == val_rows
    assert ensemble["accuracy"] == pytest.approx(float((mean[rows].argmax(1) == gold).mean()), abs=5e-5)
    assert "training finished earlier" in cli(*args)  # resumes nothing
    # the soft targets reach the loss: the same seed without teachers ends elsewhere
    from safetensors.numpy import load_file

    cli(*common, "--seed", "3", "--out", str(tmp / "plain"))
    key = "classifier.weight"
    student, plain = (load_file(str(tmp / d / "best" / "model.safetensors"))[key] for d in ("student", "plain"))
    assert not np.allclose(student, plain)
    assert "distillation.temperature" in refused(*args[:-2], "--temperature", "1", "--out", str(tmp / "student"))


def test_a_teacher_or_init_checkpoint_that_saw_held_out_tweets_is_refused(teachers, tmp_path):
    tmp, common = teachers
    without_base = common[:3] + common[5:]
    teacher = str(tmp / "t1" / "best")  # trained on each entity's earliest 70%: half of it is validation here
    line = refused(*common, "--teacher", teacher, "--val-fraction", "0.5", "--gap-fraction", "0", "--out",
                   str(tmp_path / "s"))
    assert "was trained on" in line and "of the held-out tweets" in line
    # nor one trained on the gap's tweets, validation untouched: the gap's figures claim tweets never trained on
    assert "of the held-out tweets" in refused(*common, "--teacher", teacher, "--gap-fraction", "0.3", "--out",
                                               str(tmp_path / "s2"))
    # without a validation split (a refit on everything) the same teacher is fine
    cli(*common, "--teacher", teacher, "--val-fraction", "0", "--gap-fraction", "0", "--out", str(tmp_path / "refit"))
    assert (tmp_path / "refit" / "best" / "model.safetensors").is_file()
    # nor a checkpoint to start from: its weights carry those tweets into the figures
    line = refused(*without_base, "--init", teacher, "--val-fraction", "0.5", "--gap-fraction", "0", "--out",
                   str(tmp_path / "i"))
    assert line.startswith("error: --init checkpoint") and "of the held-out tweets" in line
    assert not (tmp_path / "i").exists() and not (tmp_path / "s").exists()  # refused before the run was claimed
    cli(*without_base, "--init", teacher, "--val-fraction", "0", "--gap-fraction", "0", "--out", str(tmp_path / "init"))
    assert (tmp_path / "init" / "best" / "model.safetensors").is_file()


def test_a_teacher_whose_data_changed_since_it_trained_is_refused(tiny_base, tmp_path):
    """A teacher's training tweets are its split as recorded (the summary's digest), not its data split again as
    the file reads now: a file that grew since (a feedback file still collecting) splits otherwise, and the teacher
    may have trained on the student's validation tweets."""
    data = tmp_path / "tweets.csv"
    shutil.copy(FIXTURES / "tweets.csv", data)
    common = ["train", "--data", str(data), "--base", str(tiny_base), "--epochs", "1", "--learning-rate", "1e-3",
              "--batch-size", "8", "--val-fraction", "0.3", "--gap-fraction", "0"]
    cli(*common, "--out", str(tmp_path / "t"))
    with data.open("a") as f:
        f.writelines(f"Acme tweet number {i} about the phone,neutral,Acme,related\n" for i in range(30))
    teacher = tmp_path / "t" / "best"
    line = refused(*common, "--teacher", str(teacher), "--out", str(tmp_path / "s"))
    assert line.startswith(f"error: teacher {teacher}: its training data, to check it against the held-out tweets: "
                           f"{data}: these tweets split otherwise than when the run trained"), line
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("extra, message", [
    (["--distill-weight", "0.5"], "give --teacher"),
    (["--average-last", "1"], "at least 2 checkpoints"),
    (["--checkpoint-every", "0"], "give at least 1"),
    (["--label-smoothing", "1"], "label smoothing must be in [0, 1)"),
    (["--focal-gamma", "0"], "gamma must be positive"),
    (["--layer-decay", "0"], "decay must be in (0, 1]"),
    (["--layer-decay", "1.5"], "decay must be in (0, 1]"),
    (["--rdrop", "0"], "R-Drop weight must be positive"),
    (["--sentiment-weight", "1"], "give --sentiment"),
    (["--extra-weight", "3"], "--extra-weight applies to the --extra tweets: give --extra"),
    (["--extra", str(FIXTURES / "tweets.csv"), "--extra", f"{FIXTURES}/./tweets.csv"], "an --extra file is given twice"),
    (["--stance-weight", "1"], "give --stance"),
    (["--stance", "/nonexistent"], "no mapping.txt"),
    (["--stance", str(FIXTURES), "--stance-weight", "0"], "weight of the tweets in"),
    (["--stance", str(FIXTURES), "--teacher", "INIT"], "--stance and --teacher do not go together"),
    (["--stance", str(FIXTURES), "--input-format", "text"], "--stance needs --input-format entity+text"),
    (["--stance-head", "polarity"], "--stance-head applies to the stance tweets: give --stance"),
    (["--stance", str(FIXTURES), "--stance-head", "sentiment"], "sentiment task's head: give --sentiment"),
    (["--sentiment", "/nonexistent"], "no mapping.txt"),
    (["--sentiment", str(FIXTURES), "--init", "INIT"], "not --init"),
    (["--sentiment", str(FIXTURES), "--teacher", "INIT"], "do not go together"),
    (["--pooling", "mean", "--init", "INIT"], "--pooling goes with --base"),
    (["--probe-first", "--init", "INIT"], "start from --base, not --init"),
    (["--probe-c", "0.1"], "give --probe-first"),
    (["--probe-first", "--probe-c", "0"], "inverse regularisation strength must be positive"),
    (["--also-language", "en"], "another language to validate on"),
    (["--full-names", "2"], "full name must be in"),
    (["--recency", "1.5"], "oldest training tweet's weight must be in (0, 1]"),
    (["--epochs", "0"], "at least 1 epoch"),
    (["--batch-size", "0"], "a batch of at least 1"),
    (["--patience", "0"], "a patience of at least 1"),
    (["--max-length", "600"], "give 8 to 512 tokens"),
    (["--max-length", "0"], "give 8 to 512 tokens"),
    (["--base", "/nonexistent/base"], "/nonexistent/base: not a readable base model"),
    (["--base", "OTHER"], "training takes bert or mobilebert encoders, not distilbert"),  # not BERT's WordPiece
    (["--base", "NOTOK"], "a base needs its tokenizer files (vocab.txt or tokenizer.json) beside its weights"),  # was a TypeError
    pytest.param(["--device", "cuda"], "PyTorch sees no CUDA GPU",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is here: cuda is not refused")),
])
def test_settings_that_cannot_apply_are_refused_in_one_line(teachers, tmp_path, tokenizerless, extra, message):
    tmp, common = teachers
    if "--init" in extra:  # --init takes the base and length from the checkpoint
        common = [a for i, a in enumerate(common) if a != "--base" and common[i - 1] != "--base"]
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text('{"model_type": "distilbert"}')
    named = {"INIT": str(tmp / "t1" / "best"), "OTHER": str(tmp_path / "other"), "NOTOK": str(tokenizerless)}
    extra = [named.get(a, a) for a in extra]
    assert message in refused(*common, *extra, "--out", str(tmp_path / "s"))
    assert not (tmp_path / "s").exists()


def test_the_sentiment_task_trains_its_own_head_on_tweeteval_layout_tweets(teachers, tmp_path):
    from safetensors.numpy import load_file

    from model_build.model import SENTIMENT_HEAD_FILE

    tmp, common = teachers
    folder = tmp_path / "sentiment"
    folder.mkdir()
    (folder / "mapping.txt").write_text("0\tnegative\n1\tneutral\n2\tpositive\n")
    (folder / "val_text.txt").write_text("what a lovely day\nworst service ever\nthe meeting is at noon\n" * 4)
    (folder / "val_labels.txt").write_text("2\n0\n1\n" * 4)
    runs = {}
    for weight in ("0.5", "2"):
        out = tmp_path / f"w{weight}"
        cli(*common, "--seed", "1", "--sentiment", str(folder), "--sentiment-weight", weight, "--out", str(out))
        best = Checkpoint.load(out / "best")
        assert best.summary["sentiment_examples"] == 12 and (best.path / SENTIMENT_HEAD_FILE).is_file()
        encoded = best.encoder().encode(["a tweet"], ["Acme"])
        inputs = best.encoder().pad(encoded, len(encoded[0].ids))
        polarity, related, sentiment = best.model().outputs(**{k: torch.from_numpy(v.astype(np.int64))
                                                               for k, v in inputs.items()})
        assert polarity.shape == sentiment.shape == (1, 3) and related.shape == (1, 1)
        assert len(best.model()(**{k: torch.from_numpy(v.astype(np.int64)) for k, v in inputs.items()})) == 2
        runs[weight] = load_file(str(out / "best" / "model.safetensors"))["classifier.weight"]
    assert not np.allclose(runs["0.5"], runs["2"])  # the sentiment loss reaches the shared encoder
    cli("package", "--data", str(tmp / "replab"), "--checkpoint", str(tmp_path / "w0.5" / "best"), "--out",
        str(tmp_path / "bundle"))
    bundle = Bundle.load(tmp_path / "bundle")
    assert bundle.manifest()["outputs"] == ["polarity", "related"]  # the sentiment head is not served
    best = Checkpoint.load(tmp_path / "w0.5" / "best")
    encodings = best.encoder().encode(["what a lovely day", "worst service ever"], ["Acme", "Acme"])
    reference, related = predict(best.model(), best.encoder(), encodings)
    served = Classifier(bundle, threads=1, bucket=1).logits(encodings)
    assert served.shape == (2, 4) and np.abs(served[:, :3] - reference).max() < 0.05 * np.abs(reference).max()
    assert np.abs(served[:, 3] - related).max() < 0.05
    (folder / "val_labels.txt").write_text("2\n0\n")
    assert "12 tweets against 2 labels" in refused(*common, "--sentiment", str(folder), "--out", str(tmp_path / "bad"))
    assert not (tmp_path / "bad").exists()


def test_stance_tweets_train_polarity_towards_their_target_and_nothing_else(teachers, tmp_path):
    """``train --stance``: the stance tweets, paired with their target, add to the polarity loss by their weight; the
    training data's own tweets alone set validation, the token length and the class weights."""
    tmp, common = teachers
    long = "a rather long tweet in favour of her that goes on and on about all the good things she did " * 2
    write_stance(tmp_path / "stance", {"hillary": [(f"{long}{i}", 2) for i in range(60)]})  # every one in favour
    plain, runs = Checkpoint.load(tmp / "t1" / "best"), {}
    for weight in ("0.5", "4"):
        out = tmp_path / f"w{weight}"
        cli(*common, "--seed", "1", "--stance", str(tmp_path / "stance"), "--stance-weight", weight, "--out", str(out))
        runs[weight] = Checkpoint.load(out / "best")
        assert runs[weight].summary["stance_examples"] == 60
        for key in ("train_examples", "validation_examples", "train_label_counts", "polarity_class_weights",
                    "max_length"):
            assert runs[weight].summary[key] == plain.summary[key], key

    def positive(c: Checkpoint) -> float:  # the mean probability of positive for the target's tweets
        encodings = c.encoder().encode([f"{long}{i}" for i in range(60)], ["Hillary Clinton"] * 60)
        return float(torch.softmax(torch.from_numpy(predict(c.model(), c.encoder(), encodings)[0]), -1)[:, 0].mean())

    assert positive(plain) < positive(runs["0.5"]) < positive(runs["4"])


def test_stance_tweets_on_the_sentiment_head_carry_their_label_there_and_none_for_polarity(tmp_path):
    from model_build.settings import StanceHead
    from model_build.train import StanceTask

    write_stance(tmp_path / "stance", {"hillary": [("yes", 2), ("no", 1), ("meh", 0)]})
    rows = {head: [(e.entity, e.label, e.sentiment, e.weight) for e in StanceTask(str(tmp_path / "stance"), 0.3,
                                                                                 head).examples()]
            for head in StanceHead}
    assert rows[StanceHead.POLARITY] == [("Hillary Clinton", label, None, 0.3)
                                         for label in ("positive", "negative", "neutral")]
    assert rows[StanceHead.SENTIMENT] == [("Hillary Clinton", None, label, 0.3)
                                          for label in ("positive", "negative", "neutral")]


def test_another_language_trains_and_validation_stays_in_the_first(teachers, tmp_path):
    """``train --also-language ES``: the Spanish tweets add to training, and validation (the run's, and the one that
    ``package`` and ``report`` derive again from the checkpoint's data) holds exactly the English tweets it holds
    without them."""
    from dataclasses import replace

    from model_build.data import with_polarity

    tmp, common = teachers
    replab = tmp_path / "replab"
    shutil.copytree(tmp / "replab", replab)
    for info in (replab / "training" / "tweet_info").glob("*.dat"):  # every third tweet becomes Spanish
        rows = info.read_text().splitlines(keepends=True)
        info.write_text("".join(r.replace('"EN"', '"ES"') if i % 3 == 0 else r for i, r in enumerate(rows)))
    common = [str(replab) if a == str(tmp / "replab") else a for a in common]
    cli(*common, "--seed", "1", "--also-language", "es", "--out", str(tmp_path / "both"))
    both = Checkpoint.load(tmp_path / "both" / "best")
    train_en, val_en = replace(both.data, also_language=None).splits()
    assert both.data.also_language == "ES" and both.summary["train_examples"] > len(train_en)
    assert both.data.splits()[1] == val_en and {e.language for e in val_en} == {"EN"}
    n = len(with_polarity(val_en))
    assert both.summary["validation"]["n"] == n > 0


def test_average_last_writes_the_mean_of_the_last_checkpoints_validated(teachers, tmp_path):
    from safetensors.numpy import load_file

    tmp, common = teachers
    out = cli(*common, "--epochs", "2", "--average-last", "2", "--out", str(tmp_path / "run"))
    steps = sorted((tmp_path / "run" / "trainer").glob("checkpoint-*"), key=lambda c: int(c.name.split("-")[1]))
    assert len(steps) == 2  # one per epoch here (the runs are shorter than 300 steps)
    averaged = Checkpoint.load(tmp_path / "run" / "averaged")
    assert averaged.summary["averaged"] == [int(c.name.split("-")[1]) for c in steps] and "averaged steps" in out
    states = [load_file(str(c / "model.safetensors")) for c in steps]
    mine = load_file(str(averaged.path / "model.safetensors"))
    key = "bert.encoder.layer.0.attention.self.query.weight"
    assert np.allclose(mine[key], (states[0]["classifier." + key] + states[1]["classifier." + key]) / 2, atol=1e-6)
    assert not np.allclose(states[0]["classifier." + key], states[1]["classifier." + key])
    assert averaged.validation_metrics()["n"] == Checkpoint.load(tmp_path / "run" / "best").validation_metrics()["n"]
    assert averaged.summary["validation"] == averaged.validation_metrics()
