"""The shared preprocessing and tokenisation, against transformers' own tokenizer and across both sides."""

import pytest

from app.text import NAME_CACHED_CHARS, TextSettings, TweetEncoder, name_key, preprocess, preprocess_name
from tests.conftest import FIXTURES, MINILM, needs_minilm

SETTINGS = TextSettings(max_length=64)


def test_preprocess_normalises_urls_mentions_entities_and_spacing():
    raw = "RT @Some_User:  Great\u200b deal &amp; more\nhttps://t.co/xYz  www.example.com/a?b=1 \x00"
    assert preprocess(raw, SETTINGS) == "RT @user: Great deal & more http http"


def test_preprocess_keeps_the_handles_where_the_settings_say_so():
    kept = TextSettings(max_length=64, mention_token=None)
    assert preprocess("RT @Some_User: hi @BMW_UK, mail a@b.com", kept) == "RT @Some_User: hi @BMW_UK, mail a@b.com"
    assert preprocess("RT @Some_User: hi @BMW_UK, mail a@b.com", SETTINGS) == "RT @user: hi @user, mail a@b.com"


def test_preprocess_drops_lone_surrogates_and_bidi_controls():
    assert preprocess("a\ud800b\u202ec\ufeff", SETTINGS) == "abc"


def test_preprocess_bounds_length():
    assert len(preprocess("x " * 100_000, SETTINGS)) <= SETTINGS.max_chars


@pytest.mark.parametrize("function", [preprocess_name, name_key])
def test_only_short_entity_names_are_kept_in_the_caches(function):
    """Entity names are client input: a long one is computed each time (4,000-character names grew a worker by 52 MB
    through these caches), a short one once, and either gives what preprocessing gives."""
    settings = TextSettings()
    long_name, short_name = "\U0001f600" * (NAME_CACHED_CHARS * 32), f"Acme {function.__name__}"
    before = function.cache_info().currsize
    assert function(long_name, settings) == function(long_name, settings)
    assert function.cache_info().currsize == before
    assert function(short_name, settings).lower() == preprocess(short_name, settings).lower()
    assert function.cache_info().currsize == before + 1


def test_pair_encoding_keeps_the_entity_and_truncates_the_tweet():
    enc = TweetEncoder(FIXTURES / "vocab.txt", TextSettings(max_length=16), pair=True)
    (e,) = enc.encode(["great deal " * 20], ["acme"])
    assert len(e.ids) == 16
    assert e.type_ids[:4] == [0, 0, 0, 1]  # [CLS] acme [SEP] then the tweet
    assert e.tokens[:3] == ["[CLS]", "acme", "[SEP]"] and e.tokens[-1] == "[SEP]"


def test_a_token_holding_a_line_separator_other_than_newline_keeps_every_id_in_place(tmp_path):
    """A vocabulary is a token a line: U+2028, U+0085 or a form feed inside a token moves no later token's id."""
    lines = (FIXTURES / "vocab.txt").read_text(encoding="utf-8").split("\n")
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(lines[:5] + ["a\u2028b", "c\x85d", "e\x0cf"] + lines[5:]), encoding="utf-8")
    (e,) = TweetEncoder(vocab, SETTINGS, pair=False).encode(["great acme"])
    assert e.ids[1:-1] == [lines.index("great") + 3, lines.index("acme") + 3]


def test_pad_masks_padding():
    enc = TweetEncoder(FIXTURES / "vocab.txt", SETTINGS, pair=False)
    encodings = enc.encode(["great", "acme recalls phones"])
    batch = enc.pad(encodings, 12)
    assert batch["input_ids"].shape == (2, 12) and batch["input_ids"].dtype.name == "int32"
    assert batch["attention_mask"].sum(axis=1).tolist() == [len(e.ids) for e in encodings]


@needs_minilm
@pytest.mark.parametrize("pair", [False, True])
def test_ids_match_transformers_tokenizer_on_real_tweets(replab_sample, pair):
    """Our tokenizer, built from the vocab alone with `tokenizers`, equals transformers' for the base model."""
    from transformers import AutoTokenizer

    reference = AutoTokenizer.from_pretrained(str(MINILM))
    ours = TweetEncoder(MINILM / "vocab.txt", SETTINGS, pair=pair)
    texts = [e.text for e in replab_sample]
    entities = [e.entity for e in replab_sample]
    got = [e.ids for e in ours.encode(texts, entities)]
    clean = [preprocess(t, SETTINGS) for t in texts]
    if pair:
        names = [preprocess(e, SETTINGS) for e in entities]
        want = reference(names, clean, truncation="only_second", max_length=64)["input_ids"]
    else:
        want = reference(clean, truncation=True, max_length=64)["input_ids"]
    assert got == want


@needs_minilm
def test_build_and_edge_sides_give_identical_ids(replab_sample):
    """Training's encoding (base model's vocab, measured length) equals serving's (the default bundle)."""
    from app.bundle import Bundle
    from app.classifier import Classifier
    from app.text import InputFormat
    from model_build.base import base_tokenizer, resolve_base
    from model_build.scoring import encode_examples, text_encoder
    from tests.conftest import DEFAULT_BUNDLE

    bundle = Bundle.load(DEFAULT_BUNDLE)
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        vocab, lowercase = resolve_base(base_tokenizer(str(MINILM)), Path(tmp))
        build = text_encoder(vocab, TextSettings(max_length=bundle.text_settings.max_length, lowercase=lowercase),
                             InputFormat.PAIR)
        build_ids = [e.ids for e in encode_examples(build, replab_sample)]
    edge = Classifier(bundle, threads=1).encoder
    edge_ids = [e.ids for e in edge.encode([e.text for e in replab_sample], [e.entity for e in replab_sample])]
    assert build_ids == edge_ids and len(build_ids) >= 100


def test_one_tweet_and_a_batch_encode_alike_long_or_short():
    """A tweet encodes the same alone or in a batch beside others, truncated to the model length when long."""
    enc = TweetEncoder(FIXTURES / "vocab.txt", TextSettings(max_length=16), pair=True)
    texts = ["good " * 40, "bad service", "\x00zero\u200bwidth\tand tab " * 5]
    entities = ["the bank " * 10, "Acme", None]
    batch = enc.encode(texts, entities)
    for i, (text, entity) in enumerate(zip(texts, entities)):
        (single,) = enc.encode([text], [entity])
        assert single.ids == batch[i].ids and single.type_ids == batch[i].type_ids
        assert len(single.ids) <= 16
    assert len(batch[0].ids) == 16 and len(batch[1].ids) < 16
