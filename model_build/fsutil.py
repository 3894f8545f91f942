"""Atomic file and directory writes: a reader never sees a half-written result."""

from __future__ import annotations

import ctypes
import errno
import json
import os
import re
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from .errors import BuildError


def write_bytes(path: Path, data: bytes) -> None:
    """Write bytes to a temporary file beside ``path``, sync it and rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())  # on disk before the rename makes it the file: a power cut leaves old or new
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    """Write UTF-8 text atomically (see ``write_bytes``)."""
    write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (see ``write_text``)."""
    write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one step (Linux ``renameat2`` with ``RENAME_EXCHANGE``), so that neither name is
    ever missing; False where the system, a sandbox or the file system does not allow it."""
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None) if sys.platform == "linux" else None
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2  # <fcntl.h>, <linux/fs.h>
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM):  # EPERM: a seccomp filter's refusal
        return False
    raise OSError(code, os.strerror(code), str(a), None, str(b))


def _put_back(old: Path, target: Path) -> None:
    try:
        os.replace(old, target)
    except OSError as exc:
        raise OSError(f"{target} could not be put back: its last version is {old}, which the next write restores") \
            from exc


def finished_dirs(parent: Path, holding: str) -> list[Path]:
    """The sub-directories of ``parent`` that hold a file ``holding``, sorted; the hidden ones (:func:`atomic_dir`'s
    temporaries and old versions, which a killed write leaves behind) are not among them."""
    return sorted(p for p in Path(parent).iterdir() if not p.name.startswith(".") and (p / holding).is_file())


def check_weights(folder: Path) -> None:
    """Open every safetensors file in ``folder``: a header cut off or of garbage, or a file shorter than its header
    says, raises here (the library's error, for :func:`~model_build.errors.readable`) rather than mid-way."""
    from safetensors import safe_open

    for weights in sorted(Path(folder).glob("*.safetensors")):
        with safe_open(str(weights), framework="np"):
            pass


def check_folder(target: Path) -> None:
    """Refuse a file (or a link) where an output folder goes: it is the user's, and is left as it is."""
    if (target.exists() or target.is_symlink()) and not target.is_dir():
        what = "a file" if target.exists() else "a link to nothing"
        raise BuildError(f"{target} is {what}, not a folder: give a new or empty folder")


def check_output(target: Path, holds: str, kind: str | None = None) -> None:
    """Refuse an output folder unless it is absent, empty, or an earlier output of its kind (it holds ``holds``; its
    ``kind`` in the message): a file, or a folder of anything else, is the user's and is left as it is."""
    target = Path(target)
    check_folder(target)
    leftover = re.compile(r"\..+\.(tmp-.+|old)")  # atomic_dir's temporaries and old versions of an output inside
    if target.is_dir() and not (target / holds).exists() and any(not leftover.fullmatch(p.name) for p in target.iterdir()):
        raise BuildError(f"{target} holds other files and no {kind or holds}: give a new or empty folder")


def _sync_tree(root: Path) -> None:
    """Every file under ``root`` and every folder there on disk, before a rename makes ``root`` the output: a power
    cut then leaves the old output or the new one whole, not the new one with files cut off or empty."""
    for folder, _, files in os.walk(root):
        for path in [*(os.path.join(folder, name) for name in files), folder]:
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


@contextmanager
def atomic_dir(target: Path, holds: str) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``target`` only if the block succeeds: in one step where the system
    can swap two directories, else by two renames with the old one kept aside between them (and put back if the
    second fails; where even that fails, the next call puts it back first). A ``target`` that holds anything but
    is no earlier output of this kind (it lacks the file ``holds``) is refused: a user's folder is never replaced."""
    target = Path(target)
    check_output(target, holds)
    target.parent.mkdir(parents=True, exist_ok=True)
    old = target.parent / f".{target.name}.old"
    if old.is_dir() and not (target.exists() or target.is_symlink()):
        os.replace(old, target)  # the last version, left aside by a replacement that could not put it back
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tmp-"))
    tmp.chmod(0o755)
    try:
        yield tmp
        _sync_tree(tmp)
        if target.is_dir() and not target.is_symlink() and exchange(tmp, target):
            shutil.rmtree(tmp, ignore_errors=True)  # now the old contents
            return
        shutil.rmtree(old, ignore_errors=True)
        aside = False
        try:
            if target.exists() or target.is_symlink():
                os.replace(target, old)
                aside = True
            os.replace(tmp, target)
        except BaseException:
            if aside:
                _put_back(old, target)
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old.is_symlink():
        old.unlink()
    shutil.rmtree(old, ignore_errors=True)
