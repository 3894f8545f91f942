"""Training on transformers' Trainer (model_build/train.py) against the hand-written loop it replaced (commit
d00e9fa): seconds per step of one epoch on the same tweets, model, batch size and threads, alternating rounds.

    python -m bench.trainer [--steps 40] [--rounds 3] [--threads 2]   -> bench/results/trainer.json and .md
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from app.arguments import whole_number
from model_build.errors import BuildError
from model_build.fsutil import write_json, write_text

from .data import ROOT, data_spec, split_tweets
from .machine import machine_info
from .server import ServiceFailed

LOOP_COMMIT = "d00e9fa"
MINILM = ROOT.parent / "shared" / "models" / "all-MiniLM-L6-v2"


def _loop_module():
    """model_build/train.py as it was at LOOP_COMMIT, imported as model_build._loop_train."""
    source = subprocess.run(["git", "show", f"{LOOP_COMMIT}:model_build/train.py"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp(prefix="loop-")) / "_loop_train.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("model_build._loop_train", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _loop(train_set, out: Path, threads: int) -> float:
    loop = _loop_module()
    run = loop._Run(loop.TrainConfig(base=str(MINILM), out_dir=out, epochs=1, threads=threads, checkpoint_every=0),
                    train_set, [])
    started = time.perf_counter()
    run.train_epoch()
    return (time.perf_counter() - started) / len(run.lengths) * run.config.batch_size


def _trainer(train_set, out: Path, threads: int) -> float:
    from transformers import TrainerCallback

    from model_build.train import TrainConfig, _Run

    config = TrainConfig(base=str(MINILM), out_dir=out, epochs=1, threads=threads, checkpoint_every=10**6)
    run = _Run(config, train_set, [], {"config": config.to_dict(), "data": data_spec().to_dict()})
    trainer = run.trainer()
    marks = {}

    class Clock(TrainerCallback):  # the steps only: not the validation and best-epoch export after them
        def on_train_begin(self, args, state, control, **kwargs):
            marks["start"] = time.perf_counter()

        def on_epoch_end(self, args, state, control, **kwargs):
            marks["end"], marks["steps"] = time.perf_counter(), state.global_step

    trainer.add_callback(Clock())
    trainer.train()
    return (marks["end"] - marks["start"]) / marks["steps"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.trainer", description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=whole_number(1), default=40, help="training steps (batches of 32) per measurement")
    parser.add_argument("--rounds", type=whole_number(1), default=3, help="alternating rounds of both")
    parser.add_argument("--threads", type=whole_number(1, 64), default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    try:
        machine = machine_info()
        train_set, _ = split_tweets()
    except (BuildError, ServiceFailed) as exc:
        print(f"bench.trainer: {exc}", file=sys.stderr)
        return 2
    subset = train_set[: args.steps * 32]
    seconds: dict[str, list[float]] = {"loop": [], "trainer": []}
    for round_ in range(args.rounds):
        for name, measure in (("loop", _loop), ("trainer", _trainer))[:: 1 if round_ % 2 == 0 else -1]:
            with tempfile.TemporaryDirectory() as tmp:
                seconds[name].append(measure(subset, Path(tmp), args.threads))
            print(f"round {round_ + 1}: {name} {seconds[name][-1]:.3f} s/step", flush=True)
    ratio = statistics.median(seconds["loop"]) / statistics.median(seconds["trainer"])
    verdict = "adopt the Trainer" if ratio >= 0.95 else "keep the loop"
    results = {"steps": args.steps, "rounds": args.rounds, "threads": args.threads, "loop_commit": LOOP_COMMIT,
               "seconds_per_step": seconds, "trainer_speed_vs_loop": round(ratio, 3), "verdict": verdict,
               "machine": machine}
    write_json(args.out / "trainer.json", results)
    write_text(args.out / "trainer.md",
               f"# transformers' Trainer against the hand-written loop ({LOOP_COMMIT})\n\n{args.steps} steps of batch "
               f"32, {args.threads} threads, {args.rounds} alternating rounds, first round included; medians.\n\n"
               "| loop | s/step (each round) | median |\n|---|---|---|\n"
               + "".join(f"| {k} | {', '.join(f'{v:.3f}' for v in vs)} | {statistics.median(vs):.3f} |\n"
                         for k, vs in seconds.items())
               + f"\nTrainer speed relative to the loop: {ratio:.3f} (adopt at >= 0.95): {verdict}.\n")
    print(f"Trainer speed relative to the loop: {ratio:.3f}: {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
