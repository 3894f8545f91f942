"""Property tests: any Unicode (emoji, RTL, zero-width and control characters, NUL, lone surrogates,
very long strings) preprocesses and tokenises without error, deterministically, within the model's length."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.bundle import Bundle
from app.text import preprocess
from tests.conftest import TINY_BUNDLE

BUNDLE = Bundle.load(TINY_BUNDLE)
SPECIAL = st.sampled_from(["\x00", "\u200b", "\u200f", "\u202e", "\ufeff", "\ud800", "\udfff", "🙂", "👩‍👩‍👧", "مرحبا",
                           "שלום", "\u0301", "&amp;", "@user_1", "http://t.co/x", "\t\n\r", "\x7f", "\U0010ffff"])
TEXT = st.lists(st.one_of(st.text(), SPECIAL), max_size=40).map("".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=TEXT, entity=st.one_of(st.none(), TEXT))
def test_any_text_encodes_within_length_and_deterministically(text, entity):
    from app.text import TweetEncoder

    encoder = TweetEncoder(BUNDLE.vocab_path, BUNDLE.text_settings, pair=True)
    clean = preprocess(text, BUNDLE.text_settings)
    assert clean == preprocess(text, BUNDLE.text_settings)
    assert all(not 0xD800 <= ord(c) <= 0xDFFF and c not in "\x00\u200b\u202e" for c in clean)
    (first,) = encoder.encode([text], [entity])
    (again,) = encoder.encode([text], [entity])
    assert first.ids == again.ids
    assert 3 <= len(first.ids) <= BUNDLE.text_settings.max_length


@settings(max_examples=5, deadline=None)
@given(repeat=st.sampled_from(["a", "🙂", "word ", "\u200b", "&amp;"]))
def test_100kb_strings(repeat):
    from app.text import TweetEncoder

    text = repeat * (100_000 // len(repeat.encode()))
    encoder = TweetEncoder(BUNDLE.vocab_path, BUNDLE.text_settings, pair=True)
    (enc,) = encoder.encode([text], ["Acme"])
    assert len(enc.ids) <= BUNDLE.text_settings.max_length
    assert len(preprocess(text, BUNDLE.text_settings)) <= BUNDLE.text_settings.max_chars
