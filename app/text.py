"""Tweet preprocessing and tokenisation: the single implementation used for training and serving."""

from __future__ import annotations

import functools
import html
import re
import unicodedata
from dataclasses import asdict, dataclass, fields
from enum import Enum
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
from tokenizers import Encoding, Tokenizer, normalizers, pre_tokenizers, processors
from tokenizers.models import WordPiece

_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_MENTION = re.compile(r"(?<![\w@])@\w{1,30}")
_SPACE = re.compile(r"\s+")
# Zero-width, bidi and other format characters, surrogates, private use, unassigned.
_DROPPED_CATEGORIES = frozenset({"Cf", "Cs", "Co", "Cn"})
# U+FFFD, what bytes that are not UTF-8 decode as (and "&#0;" unescapes to): the tokenizer's BERT normaliser drops it
# as it drops NUL, so a text of only such characters reads as empty, and an entity of only them as none.
_REPLACEMENT = "\ufffd"
MIN_LENGTH, MAX_LENGTH = 8, 512  # tokens a model input may have: BERT-family position embeddings stop at 512


class InputFormat(str, Enum):
    """What the model reads: the tweet alone, or the (entity name, tweet) pair."""

    TEXT = "text"
    PAIR = "entity+text"

    @property
    def pair(self) -> bool:
        return self is InputFormat.PAIR


@dataclass(frozen=True)
class TextSettings:
    """How raw tweet text becomes model input; stored in every bundle's manifest."""

    max_length: int = 64
    lowercase: bool = True
    url_token: str = "http"
    mention_token: str | None = "@user"  # what every @handle becomes; None keeps the handles as written
    max_chars: int = 2000

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> "TextSettings":
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown preprocessing settings: {sorted(unknown)}")
        return cls(**data)

    def __post_init__(self) -> None:
        if not MIN_LENGTH <= self.max_length <= MAX_LENGTH:
            raise ValueError(f"max_length {self.max_length} outside {MIN_LENGTH}..{MAX_LENGTH}")


def _clean_char(ch: str) -> str:
    if ch in "\t\n\r\x0b\x0c":
        return " "
    category = unicodedata.category(ch)
    if category == "Cc" or category in _DROPPED_CATEGORIES or ch == _REPLACEMENT:
        return ""
    return ch


# _clean_char on ASCII as a str.translate table: most tweets are ASCII and skip a Python call per character.
_ASCII_CLEAN = {i: _clean_char(chr(i)) for i in range(128) if _clean_char(chr(i)) != chr(i)}


def _shown(ch: str) -> bool:
    """Whether preprocessing keeps a character as other than space: Python's printable characters (not control,
    format as zero-width and bidi, surrogate, private-use, unassigned or separator), the space and U+FFFD (which the
    tokenizer drops) too left out."""
    return ch.isprintable() and not ch.isspace() and ch != _REPLACEMENT


def visible(text: str) -> bool:
    """Whether preprocessing keeps anything of a text but spaces (HTML entities read as their characters)."""
    return any(map(_shown, html.unescape(text)))


@functools.cache
def visible_class() -> str:
    """The characters ``visible`` counts, as the inside of a regular expression's character class (ranges of this
    Python's Unicode database: code points as ``\\uXXXX``, those beyond as themselves), for the API schema. Named
    rather than negated: a generator (Hypothesis, for the API's fuzz tests) builds a class from its members, and the
    invisible ones (unassigned code points above all) are six times as many."""
    ranges: list[list[int]] = []
    for code, ch in enumerate(map(chr, range(0x110000))):
        if _shown(ch):
            if ranges and ranges[-1][1] == code - 1:
                ranges[-1][1] = code
            else:
                ranges.append([code, code])
    return "".join(_spell(a) if a == b else f"{_spell(a)}-{_spell(b)}" for a, b in ranges)


def _spell(code: int) -> str:
    return f"\\u{code:04x}" if code <= 0xFFFF else chr(code)


def _characters(text: str, settings: TextSettings) -> str:
    """HTML entities read, Unicode composed, control and invisible characters dropped or made spaces."""
    text = unicodedata.normalize("NFC", html.unescape(text[: settings.max_chars * 2]))
    return text.translate(_ASCII_CLEAN) if text.isascii() else "".join(_clean_char(ch) for ch in text)


def _spaced(text: str, settings: TextSettings) -> str:
    return _SPACE.sub(" ", text).strip()[: settings.max_chars]


def preprocess(text: str, settings: TextSettings) -> str:
    """Normalise one tweet (or entity name): HTML entities, Unicode, URLs, mentions, spacing."""
    text = _URL.sub(settings.url_token, _characters(text, settings))
    if settings.mention_token is not None:
        text = _MENTION.sub(settings.mention_token, text)
    return _spaced(text, settings)


NAME_CACHED_CHARS = 128  # a brand's name is shorter: only names up to this length are kept in the caches below


def _cached_when_short(function):
    """``function`` of an entity name and settings, its results for the last 1,024 names of up to NAME_CACHED_CHARS
    characters kept (names repeat from request to request). Names are client input: a longer one is computed each
    time, so the two caches hold at most about 2.2 MB (measured; they grew a worker by 52 MB with 4,000-character names)."""
    cached = functools.lru_cache(maxsize=1024)(function)

    @functools.wraps(function)
    def short_cached(name: str, settings: TextSettings) -> str:
        return cached(name, settings) if len(name) <= NAME_CACHED_CHARS else function(name, settings)

    short_cached.cache_info = cached.cache_info
    return short_cached


@_cached_when_short
def preprocess_name(name: str, settings: TextSettings) -> str:
    """An entity name, preprocessed as a tweet is."""
    return preprocess(name, settings)


@_cached_when_short
def name_key(name: str, settings: TextSettings) -> str:
    """What an entity name is matched by against a bundle's aliases: preprocessed with its URLs and handles as
    written (each a name of its own), lower case where the model reads lower case."""
    key = _spaced(_characters(name, settings), settings)
    return key.lower() if settings.lowercase else key


class TweetEncoder:
    """WordPiece encoder for single tweets or (entity, tweet) pairs, built from a vocab file; ``aliases``, pairs of
    (another name of an entity, the name it was trained with), have an entity named by the first read as the second."""

    def __init__(self, vocab_file: str | Path, settings: TextSettings, pair: bool,
                 aliases: Iterable[tuple[str, str]] = ()):
        self.settings = settings
        self.pair = pair
        self._aliases = {name_key(alias, settings): preprocess(name, settings) for alias, name in aliases}
        vocab = _read_vocab(Path(vocab_file))
        missing = [t for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]") if t not in vocab]
        if missing:
            raise ValueError(f"vocabulary {vocab_file} lacks special tokens {missing}")
        tok = Tokenizer(WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
        tok.normalizer = normalizers.BertNormalizer(
            clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=settings.lowercase
        )
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        cls_id, sep_id = vocab["[CLS]"], vocab["[SEP]"]
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]",
            pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
        )
        # longest_first trims the tweet while it is the longer part (as only_second would), and also an
        # entity too long to fit on its own, which only_second refuses with an error.
        tok.enable_truncation(settings.max_length, strategy="longest_first")
        self._tokenizer = tok
        self.pad_id = vocab["[PAD]"]

    def encode(self, texts: Sequence[str], entities: Sequence[str | None] | None = None) -> list[Encoding]:
        """Encode tweets (with their entities when this encoder takes pairs), unpadded."""
        clean = [preprocess(t, self.settings) for t in texts]
        if not self.pair:
            return self._tokenizer.encode_batch(clean)
        if entities is None or len(entities) != len(texts):
            raise ValueError("an entity is needed for every tweet")
        names = [self.alias(e) or preprocess_name(e, self.settings) if e else "" for e in entities]
        return self._tokenizer.encode_batch(list(zip(names, clean)))

    def alias(self, entity: str) -> str | None:
        """The name an entity name stands for, preprocessed, where it is one of the aliases; None otherwise."""
        return self._aliases.get(name_key(entity, self.settings)) if self._aliases else None

    def pad(self, encodings: Sequence[Encoding], length: int) -> dict[str, np.ndarray]:
        """Model inputs for a batch, padded (never truncated) to ``length``."""
        batch = np.full((3, len(encodings), length), 0, dtype=np.int32)
        batch[0].fill(self.pad_id)
        for row, enc in enumerate(encodings):
            n = len(enc.ids)
            batch[0, row, :n] = enc.ids
            batch[1, row, :n] = 1
            batch[2, row, :n] = enc.type_ids
        return {"input_ids": batch[0], "attention_mask": batch[1], "token_type_ids": batch[2]}


def text_lines(path: Path, errors: str = "strict") -> list[str]:
    """A UTF-8 file's lines (``errors`` as ``open`` takes it), split where a line ends (a newline or a carriage
    return), as transformers' BertTokenizer reads a vocabulary: not at U+2028, U+0085 or a form feed inside a token or
    a tweet, where ``str.splitlines`` would split too."""
    with path.open(encoding="utf-8", errors=errors) as fh:  # universal newlines: "\r\n" and "\r" read as "\n"
        lines = fh.read().split("\n")
    return lines[:-1] if lines[-1] == "" else lines


def _read_vocab(path: Path) -> dict[str, int]:
    return {token: i for i, token in enumerate(text_lines(path))}
