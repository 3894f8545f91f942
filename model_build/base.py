"""The base encoder a run starts from, by hub name or local path: its architecture and its vocabulary."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

from .errors import BuildError


class Architecture(str, Enum):
    """The BERT-family encoders built here at random and pretrained further (their masked-LM head is ``cls``)."""

    BERT = "bert"
    MOBILEBERT = "mobilebert"


def _unreadable(base: str, exc: Exception) -> BuildError:
    return BuildError(f"{base}: not a readable base model ({type(exc).__name__}: a local folder in Hugging Face "
                      "layout, or a hub name already downloaded or reachable)")


def base_model_type(base: str) -> str:
    """The model type of the base's configuration (``bert``, ``mobilebert``, ...)."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(base).model_type
    except (OSError, ValueError) as exc:
        raise _unreadable(base, exc) from None


def base_architecture(base: str, use: str) -> Architecture:
    """The base's architecture, one of :class:`Architecture` (what the text pipeline, BERT's WordPiece with token types,
    and the model's heads are built for), or a BuildError saying that ``use`` takes none other."""
    model_type = base_model_type(base)
    try:
        return Architecture(model_type)
    except ValueError:
        names = " or ".join(a.value for a in Architecture)
        raise BuildError(f"{base}: {use} takes {names} encoders, not {model_type}") from None


def base_tokenizer(base: str):
    """The base's tokenizer, or a BuildError of one line where it cannot be read or the base has none."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(base)
    except (OSError, ValueError) as exc:
        raise _unreadable(base, exc) from None
    except TypeError as exc:  # a folder without tokenizer files: transformers stats a vocabulary path of None
        raise BuildError(f"{base}: its tokenizer cannot be read ({exc}): a base needs its tokenizer files (vocab.txt or "
                         "tokenizer.json) beside its weights") from None


def resolve_base(tokenizer, work_dir: Path) -> tuple[Path, bool]:
    """The vocabulary file of a base's ``tokenizer`` (:func:`base_tokenizer`), saved into ``work_dir``, and whether it
    lower-cases."""
    work_dir.mkdir(parents=True, exist_ok=True)
    (vocab_file,) = tokenizer.save_vocabulary(str(work_dir))
    return Path(vocab_file), bool(getattr(tokenizer, "do_lower_case", True))
