"""Inference sized to the input equals inference at the full padded length; batches equal singles."""

import numpy as np
import pytest

from app.bundle import Bundle
from app.classifier import Classifier
from tests.conftest import DEFAULT_BUNDLE, TINY_RELATED_BUNDLE, real_bundles, splitting_threshold, with_manifest

TWEETS = [
    ("Acme recalls 300000 phones over overheating batteries", "Acme"),
    ("great", "Nova Sound"),
    ("Globex Bank fined for misleading customers about fees and charges, regulators say " * 3, "Globex Bank"),
    ("Initech University campus tour starts at noon", "Initech University"),
    ("Zephyr Motors wins car of the year award!!! http://t.co/x @fan", "Zephyr Motors"),
]


@pytest.fixture(scope="module", params=real_bundles(), ids=lambda p: p.name)
def classifier(request):
    return Classifier(Bundle.load(request.param), threads=1)


@pytest.mark.parametrize("bucket", [1, 8])
def test_sized_equals_full_padding(classifier, bucket, monkeypatch):
    texts, entities = zip(*TWEETS)
    encodings = classifier.encoder.encode(list(texts), list(entities))
    lengths = {len(e.ids) for e in encodings}
    assert len(lengths) > 2 and max(lengths) <= classifier.bundle.text_settings.max_length
    monkeypatch.setattr(classifier, "bucket", bucket)
    sized = classifier.logits(encodings)
    full = classifier.logits(encodings, pad_to=classifier.bundle.text_settings.max_length)
    np.testing.assert_allclose(sized, full, rtol=1e-3, atol=1e-3)
    assert (sized.argmax(1) == full.argmax(1)).all()


def test_batch_equals_one_at_a_time(classifier):
    texts, entities = zip(*TWEETS)
    batch = classifier.classify(list(texts), list(entities))
    singles = [classifier.classify([t], [e])[0] for t, e in TWEETS]
    assert [p.label for p in batch] == [p.label for p in singles]
    for b, s in zip(batch, singles):
        for label in classifier.bundle.labels:
            assert abs(b.scores[label] - s.scores[label]) < 1e-3
        assert (b.related is None) == (s.related is None) and abs((b.related or 0) - (s.related or 0)) < 1e-3


def test_related_only_where_the_bundle_has_that_head(classifier):
    predictions = classifier.classify([t for t, _ in TWEETS], [e for _, e in TWEETS])
    assert classifier.bundle.has_related is (classifier.bundle.path in (DEFAULT_BUNDLE, TINY_RELATED_BUNDLE))
    if classifier.bundle.has_related:
        assert all(0 <= p.related <= 1 for p in predictions)
        assert all(p.to_dict()["related"] == p.related for p in predictions)
        assert all(p.to_dict()["about"] is (p.related >= classifier.bundle.related_threshold) for p in predictions)
        assert len({p.related for p in predictions}) > 1  # it reads the tweet
    else:
        assert all(p.related is None and p.about is None for p in predictions)
        assert all(not {"related", "about"} & set(p.to_dict()) for p in predictions)


def test_about_is_the_verdict_at_the_bundles_related_threshold(tmp_path):
    """A manifest's related_threshold moves the verdict, not the probability; without one it is 0.5."""
    texts, entities = map(list, zip(*TWEETS))
    plain = Classifier(Bundle.load(TINY_RELATED_BUNDLE), threads=1).classify(texts, entities)
    assert Bundle.load(TINY_RELATED_BUNDLE).related_threshold == 0.5
    assert [p.about for p in plain] == [p.related >= 0.5 for p in plain]
    threshold = splitting_threshold(p.related for p in plain)
    bundle = Bundle.load(with_manifest(TINY_RELATED_BUNDLE, tmp_path / "bundle", related_threshold=threshold))
    assert bundle.related_threshold == threshold and bundle.summary()["related_threshold"] == threshold
    moved = Classifier(bundle, threads=1).classify(texts, entities)
    assert [p.related for p in moved] == [p.related for p in plain]
    assert [p.about for p in moved] == [p.related >= threshold for p in plain]
    assert {p.about for p in moved} == {True, False}


def test_label_offsets_move_the_label_and_scores_not_relatedness(tmp_path):
    """A manifest's label_offsets are added to the polarity logits: the scores are the softmax of the sum and the
    label its highest, so an offset on negative between the tweets' margins turns some, not all, to negative;
    relatedness stays. /v1/model's summary states the offsets set (a label's name in any case)."""
    texts, entities = map(list, zip(*TWEETS))
    plain = Classifier(Bundle.load(TINY_RELATED_BUNDLE), threads=1)
    labels = list(plain.bundle.labels)
    negative = labels.index("negative")
    raw = plain.logits(plain.encoder.encode(texts, entities))[:, : len(labels)].astype(np.float64)
    margins = np.delete(raw, negative, axis=1).max(axis=1) - raw[:, negative]  # what negative lacks to win
    offset = float(splitting_threshold(margins.round(6)))
    bundle = Bundle.load(with_manifest(TINY_RELATED_BUNDLE, tmp_path / "bundle", label_offsets={"NEGATIVE": offset}))
    assert bundle.summary()["label_offsets"] == {"negative": offset} and "label_offsets" not in plain.bundle.summary()
    moved = Classifier(bundle, threads=1).classify(texts, entities)
    shifted = raw + np.where(np.arange(len(labels)) == negative, offset, 0)
    expected = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    for p, row in zip(moved, expected):
        assert p.label == labels[int(row.argmax())] == max(p.scores, key=p.scores.get)
        assert np.allclose([p.scores[name] for name in labels], row, atol=1e-5)
    before = [p.label for p in plain.classify(texts, entities)]
    turned = [a != b for a, b in zip(before, (p.label for p in moved))]
    assert any(turned) and not all(turned) and all(p.label == "negative" for p, t in zip(moved, turned) if t)
    assert [p.related for p in moved] == [p.related for p in plain.classify(texts, entities)]


def test_scores_are_probabilities(classifier):
    (p,) = classifier.classify(["Acme stock falls"], ["Acme"])
    assert set(p.scores) == set(classifier.bundle.labels)
    assert abs(sum(p.scores.values()) - 1) < 1e-4
    assert p.label == max(p.scores, key=p.scores.get)


def test_an_entity_named_by_an_alias_is_read_as_the_name_it_stands_for(tmp_path):
    """A manifest's entity_aliases have a tweet about an entity named by its alias (in any case and spacing) scored
    as with the name it maps to: label, scores and relatedness; other names are read as they are. /v1/model's
    summary lists the aliases."""
    texts = [text for text, _ in TWEETS]
    plain = Classifier(Bundle.load(TINY_RELATED_BUNDLE), threads=1)
    aliases = {"Zorblax Holdings Ltd": "Zorblax", "The Acme Corporation": "Acme", "www.acme.com": "Acme"}
    bundle = Bundle.load(with_manifest(TINY_RELATED_BUNDLE, tmp_path / "bundle", entity_aliases=aliases))
    assert bundle.summary()["entity_aliases"] == aliases and "entity_aliases" not in plain.bundle.summary()
    aliased = Classifier(bundle, threads=1)
    for alias, name in [*aliases.items(), ("  zorblax  HOLDINGS ltd ", "Zorblax")]:
        by_name = plain.classify(texts, [name] * len(texts))
        assert plain.classify(texts, [alias] * len(texts)) != by_name  # the model reads the two apart
        assert aliased.classify(texts, [alias] * len(texts)) == by_name == aliased.classify(texts, [name] * len(texts))
    for other in ("Zorblax Holdings", "Acme Corporation Ltd", "www.globex.com", "https://www.acme.com"):  # a URL too
        assert aliased.classify(texts, [other] * len(texts)) == plain.classify(texts, [other] * len(texts))
