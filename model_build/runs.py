"""A run directory's record of the settings it was started with, so that a rerun resumes only the same run."""

from __future__ import annotations

import fcntl
import json
import math
import os
import shutil
import time
from dataclasses import asdict
from enum import Enum
from pathlib import Path

from .errors import BuildError, readable
from .fsutil import check_output, check_weights, write_json


def as_json(config) -> dict:
    """A dataclass's fields as JSON has them (enums as values, paths as strings, tuples as lists)."""
    return json.loads(json.dumps(asdict(config), default=str))


def run_settings(config) -> dict:
    """What makes a run the same run: its config less where it writes and what it runs on."""
    return {k: v for k, v in as_json(config).items() if k not in ("out_dir", "threads", "device")}


def epoch_order_callback():
    """A Trainer callback with which a run cut off inside an epoch resumes with that epoch's batch order, as if never
    cut off: the Trainer draws length-grouped batches from PyTorch's global generator when an epoch starts, and on
    resuming draws them before it restores the checkpoint's generator, so the generator's state at the epoch's start
    travels in the checkpoints and comes back first."""
    import base64

    import torch
    from transformers import TrainerCallback
    from transformers.trainer_callback import ExportableState

    class EpochOrder(TrainerCallback, ExportableState):
        def __init__(self, epoch: int | None = None, generator: str | None = None):
            self.epoch, self.generator = epoch, generator
            self.restored = generator is not None  # built by the Trainer from a checkpoint's state

        def state(self) -> dict:
            return {"args": {"epoch": self.epoch, "generator": self.generator}, "attributes": {}}

        def on_epoch_begin(self, args, state, control, **kwargs):
            epoch = math.floor((state.epoch or 0) + 1e-6)
            if self.restored and epoch == self.epoch:  # resumed inside the epoch recorded last
                torch.set_rng_state(torch.frombuffer(bytearray(base64.b64decode(self.generator)), dtype=torch.uint8))
            else:
                self.epoch = epoch
                self.generator = base64.b64encode(torch.get_rng_state().numpy().tobytes()).decode()
            self.restored = False

    return EpochOrder()


def elapsed_callback(resume: str | None):
    """A Trainer callback whose ``seconds()`` is the training time so far, the sittings before ``resume`` (the
    checkpoint resumed from, if any) included: that time travels in each checkpoint. Added just before training
    starts."""
    from transformers import TrainerCallback
    from transformers.trainer_callback import ExportableState

    saved = json.loads((Path(resume) / "trainer_state.json").read_text()) if resume else {}
    before = saved.get("stateful_callbacks", {}).get("Elapsed", {}).get("args", {}).get("seconds", 0.0)
    started = time.monotonic()

    class Elapsed(TrainerCallback, ExportableState):
        def __init__(self, seconds: float = 0.0):
            """The Trainer restores it with the time it saved: read above from the same checkpoint."""

        @staticmethod
        def seconds() -> float:
            return round(before + time.monotonic() - started, 1)

        def state(self) -> dict:
            return {"args": {"seconds": self.seconds()}, "attributes": {}}

    return Elapsed()


def last_checkpoint(trainer_dir: Path) -> str | None:
    """The newest Trainer checkpoint to resume from, if any (announced). One without its state file, which the
    Trainer writes last (after the weights, optimizer and generators, before it removes the checkpoint before), is a
    save cut off (Ctrl-C or a kill while it saved): it is removed, and the run resumes from the one before it, saved
    again when training gets there."""
    from transformers.trainer_utils import get_last_checkpoint

    last = get_last_checkpoint(str(trainer_dir)) if trainer_dir.is_dir() else None
    while last and not (Path(last) / "trainer_state.json").exists():
        print(f"note: {Path(last).name} was cut off while it was saved (no trainer_state.json): removed")
        shutil.rmtree(last)
        last = get_last_checkpoint(str(trainer_dir))
    if last:
        _check_resumable(Path(last))
        print(f"resuming from {Path(last).name}")
    return last


def _check_resumable(checkpoint: Path) -> None:
    """A Trainer checkpoint whose files all read (its state, its weights' headers, and every PyTorch archive whole),
    or a BuildError of one line: a write cut off or a disk that failed leaves one that the Trainer would refuse with a
    traceback mid-way."""
    import zipfile

    with readable(f"Trainer checkpoint {checkpoint} (cut off or damaged: delete it to resume from the one before, or "
                  "give a new --out)"):
        json.loads((checkpoint / "trainer_state.json").read_text())
        check_weights(checkpoint)
        for archive in sorted([*checkpoint.glob("*.pt"), *checkpoint.glob("*.pth"), *checkpoint.glob("*.bin")]):
            try:  # torch.save's archives: a zip whose members' checksums must hold
                with zipfile.ZipFile(archive) as zipped:
                    damaged = zipped.testzip()
            except zipfile.BadZipFile as exc:
                raise ValueError(f"{archive.name}: {exc}") from None
            if damaged is not None:
                raise ValueError(f"{archive.name}: {damaged} fails its checksum")


RUN_FILE = "run.json"  # in the run directory: the settings it was started with, and whether it finished


def _differing(new: dict, old: dict, prefix: str = "") -> list[str]:
    """Names of the settings that differ, nested ones as ``data.seed``; a setting absent from one side is None
    there (a setting added since a run started does not stop it resuming while left unset)."""
    names = []
    for key in sorted(new.keys() | old.keys()):
        a, b = new.get(key), old.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            names += _differing(a, b, f"{prefix}{key}.")
        elif a != b:
            names.append(prefix + key)
    return names


class RunKind(str, Enum):
    """What a run directory holds a run of (its run.json's ``kind``; absent in those written before it was kept)."""

    TRAIN = "train"
    PRETRAIN = "pretrain"


def _record(out: Path, kind: RunKind | None = None) -> tuple[dict, bool] | None:
    """The settings a run in ``out`` was started with and whether it finished; None where none was started. A run of
    another ``kind`` is refused."""
    path = out / RUN_FILE
    if not path.is_file():
        return None
    try:
        started = json.loads(path.read_text())
        record, recorded_kind = (dict(started["settings"]), bool(started["finished"])), started.get("kind")
    except (ValueError, KeyError, TypeError, AttributeError):
        raise BuildError(f"{path}: not a run record this build wrote: give a new --out") from None
    if kind is not None and recorded_kind not in (None, kind.value):
        raise BuildError(f"run directory {out} holds a {recorded_kind} run, not a {kind.value} run: give a new --out")
    return record


def started_settings(out: Path) -> dict | None:
    """The settings a run in ``out`` was started with, or None."""
    record = _record(out)
    return record[0] if record else None


# What a run keeps once it has trained: a Trainer checkpoint, or a model it wrote.
TRAINED = ("trainer/checkpoint-*", "best", "averaged", "model")
_HELD: dict[Path, int] = {}  # the run directories this process claimed, each locked (flock) until it ends


def _hold(out: Path) -> None:
    """Lock the run directory ``out`` for as long as this process runs, or refuse: another command runs in it."""
    key = out.resolve()
    if key in _HELD:
        return
    fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise BuildError(f"run directory {out} is in use by another command still running: wait for it to end, or "
                         "give a new --out") from None
    except OSError as exc:  # a file system without such locks (NFS may want a file open for writing)
        os.close(fd)
        print(f"note: run directory {out} cannot be locked ({exc.strerror}): a second command in it is not refused")
        return
    _HELD[key] = fd


def claim_run(out: Path, settings: dict, kind: RunKind) -> bool:
    """Record the run's kind and settings in ``out`` or check them against those it was started with; True when a run
    with these settings already finished there (early stopping included), so that a rerun resumes nothing. The
    directory is locked while this process runs (a second command in it is refused). A run with other settings that
    trained nothing (refused after it was claimed, or cut off before its first checkpoint: the line corrected, a
    smaller batch after running out of memory) is started again with these, what it had derived removed."""
    from .distill import TARGETS_FILE
    from .probe import PROBE_FILE

    if _record(out, kind) is None:
        check_output(out, RUN_FILE, "run (run.json)")  # a file, or a folder of the user's, never becomes a run
        out.mkdir(parents=True, exist_ok=True)
    _hold(out)
    record = _record(out, kind)
    if record:
        recorded, finished = record
        differ = _differing(settings, recorded)
        if not differ:
            return finished
        if finished or any(next(out.glob(kept), None) for kept in TRAINED):
            raise BuildError(f"run directory {out} was started with other settings ({', '.join(differ)}): "
                             "rerun it as it was to resume, or give a new --out")
        print(f"note: {out} was started with other settings ({', '.join(differ)}) and trained nothing: started again")
        for derived in ("trainer", "base_vocab", PROBE_FILE, TARGETS_FILE):
            path = out / derived
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
    write_json(out / RUN_FILE, {"kind": kind.value, "settings": settings, "finished": False})
    return False


def finish_run(out: Path, settings: dict, kind: RunKind) -> None:
    """Mark the run in ``out`` finished: a rerun with the same settings does nothing."""
    write_json(out / RUN_FILE, {"kind": kind.value, "settings": settings, "finished": True})
