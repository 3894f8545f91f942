"""Atomic writes of the build side: a directory is replaced whole or not at all, and nothing is left beside it."""

from pathlib import Path

import pytest

from model_build import fsutil
from model_build.errors import BuildError
from model_build.fsutil import atomic_dir, exchange

# where the system cannot swap two directories (not Linux, a seccomp sandbox, some file systems): two renames
SWAPS = [pytest.param(True, id="swap"), pytest.param(False, id="two-renames")]


@pytest.fixture(params=SWAPS)
def swap(request, monkeypatch):
    if not request.param:
        monkeypatch.setattr(fsutil, "exchange", lambda a, b: False)
    return request.param


def _tree(path: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in path.iterdir()}


def test_exchange_swaps_two_directories_in_one_step(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    (a / "old").write_text("1")
    (b / "new").write_text("2")
    assert exchange(a, b)  # Linux: renameat2(RENAME_EXCHANGE) on the file system the tests write to
    assert _tree(a) == {"new": "2"} and _tree(b) == {"old": "1"}
    with pytest.raises(FileNotFoundError):
        exchange(a, tmp_path / "missing")


def test_atomic_dir_replaces_a_directory_whole_and_leaves_nothing_beside_it(tmp_path, swap):
    target = tmp_path / "bundle"
    with atomic_dir(target, "model") as tmp:
        (tmp / "model").write_text("first")
    with atomic_dir(target, "model") as tmp:
        assert _tree(target) == {"model": "first"}  # the old one stays readable while the new one is written
        (tmp / "model").write_text("second")
        (tmp / "vocab").write_text("v")
    assert _tree(target) == {"model": "second", "vocab": "v"}
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]


def test_atomic_dir_keeps_the_old_directory_when_the_block_fails(tmp_path, swap):
    target = tmp_path / "bundle"
    with atomic_dir(target, "model") as tmp:
        (tmp / "model").write_text("first")
    with pytest.raises(RuntimeError), atomic_dir(target, "model") as tmp:
        (tmp / "model").write_text("half")
        raise RuntimeError("conversion failed")
    assert _tree(target) == {"model": "first"}
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]


def test_atomic_dir_puts_the_old_directory_back_when_the_second_rename_fails(tmp_path, monkeypatch):
    target = tmp_path / "bundle"
    with atomic_dir(target, "model") as tmp:
        (tmp / "model").write_text("first")
    monkeypatch.setattr(fsutil, "exchange", lambda a, b: False)
    real_replace = fsutil.os.replace

    def replace(src, dst):  # the rename of the new directory into place fails (a full disk, a read-only remount)
        if Path(src).name.startswith(".bundle.tmp-"):
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(fsutil.os, "replace", replace)
    with pytest.raises(OSError, match="No space"), atomic_dir(target, "model") as tmp:
        (tmp / "model").write_text("second")
    assert _tree(target) == {"model": "first"}
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]


def test_atomic_dir_keeps_the_last_version_aside_when_it_cannot_be_put_back_and_restores_it_next_time(
        tmp_path, monkeypatch):
    target = tmp_path / "bundle"
    with atomic_dir(target, "model") as tmp:
        (tmp / "model").write_text("first")
    monkeypatch.setattr(fsutil, "exchange", lambda a, b: False)
    real_replace = fsutil.os.replace

    def replace(src, dst):  # neither the new directory nor the old one can be renamed to the target
        if Path(dst) == target:
            raise OSError(5, "Input/output error")
        real_replace(src, dst)

    monkeypatch.setattr(fsutil.os, "replace", replace)
    with pytest.raises(OSError, match="its last version is .*\\.bundle\\.old"), atomic_dir(target, "model") as tmp:
        (tmp / "model").write_text("second")
    assert not target.exists() and _tree(tmp_path / ".bundle.old") == {"model": "first"}
    monkeypatch.setattr(fsutil.os, "replace", real_replace)
    with pytest.raises(RuntimeError), atomic_dir(target, "model") as tmp:  # the next write puts it back before anything else
        raise RuntimeError("conversion failed")
    assert _tree(target) == {"model": "first"} and [p.name for p in tmp_path.iterdir()] == ["bundle"]


def test_atomic_dir_replaces_a_symlink_with_a_directory_and_leaves_its_target_alone(tmp_path):
    # a link is never swapped (that would move the link, not the directory): always the two renames
    real = tmp_path / "1.2.0"
    with atomic_dir(real, "model") as tmp:
        (tmp / "model").write_text("kept")
    (tmp_path / "default").symlink_to(real)
    with atomic_dir(tmp_path / "default", "model") as tmp:
        (tmp / "model").write_text("new")
    assert not (tmp_path / "default").is_symlink() and _tree(tmp_path / "default") == {"model": "new"}
    assert _tree(real) == {"model": "kept"} and sorted(p.name for p in tmp_path.iterdir()) == ["1.2.0", "default"]


def test_atomic_dir_never_replaces_a_folder_that_is_not_its_own_kind(tmp_path):
    """A user's folder given as the output (notes in it, no earlier output's file) is refused and left as it is; an
    empty folder or an earlier output is replaced."""
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(BuildError, match="project holds other files and no model: give a new or empty folder"):
        with atomic_dir(folder, "model") as tmp:
            (tmp / "model").write_text("new")
    assert _tree(folder) == {"notes.txt": "mine"} and sorted(p.name for p in tmp_path.iterdir()) == ["project"]
    (folder / "notes.txt").unlink()
    for content in ("first", "second"):  # empty, then an earlier output
        with atomic_dir(folder, "model") as tmp:
            (tmp / "model").write_text(content)
        assert _tree(folder) == {"model": content}
