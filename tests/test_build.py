"""The build side end to end on a tiny model, and MobileBERT through the converter in all four variants."""

from __future__ import annotations

import csv
import json
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

from app.bundle import Bundle
from app.classifier import Classifier
from app.text import TextSettings
from model_build.cli import main
from tests.conftest import FIXTURES, ROOT, Stopped, cli, refused, stopped_after_save, with_manifest

with open(FIXTURES / "tweets.csv", encoding="utf-8") as _fh:
    FIXTURE_ROWS = list(csv.DictReader(_fh))
N_FIXTURES = len(FIXTURE_ROWS)
N_POLARITY = sum(1 for r in FIXTURE_ROWS if r["label"])
VARIANTS = ("float32", "float16", "dynamic-int8", "full-int8")
# Agreement with the PyTorch model, as max |TFLite - PyTorch| over max |PyTorch| logits.
TOLERANCE = {"float32": 1e-4, "float16": 1e-2, "dynamic-int8": 0.1}
# Full-int8 of a BERT, calibrated on real inputs (miscalibrated, with the mask fed token ids, it gave 1.0: all zero).
FULL_INT8_TOLERANCE = 0.25


def entry_point(*args: str) -> str:
    """The output (stdout, then stderr) of the real ``python -m model_build ARGS`` in its own interpreter, which must
    succeed."""
    out = subprocess.run([sys.executable, "-m", "model_build", *args], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout + out.stderr


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_base):
    """A random tiny BERT, trained two epochs on the fixture tweets, packaged in all four variants."""
    tmp = tmp_path_factory.mktemp("build")
    data = str(FIXTURES / "tweets.csv")
    (tmp / "base").symlink_to(tiny_base)
    train_out = entry_point("train", "--data", data, "--base", str(tmp / "base"), "--out", str(tmp / "run"), "--epochs",
                            "2", "--val-fraction", "0.25", "--gap-fraction", "0", "--learning-rate", "1e-3", "--threads", "2")
    package_out = entry_point("package", "--data", data, "--checkpoint", str(tmp / "run" / "best"), "--variants",
                              ",".join(VARIANTS), "--out", str(tmp / "bundles"), "--name", "tiny-e2e", "--version", "1.2.3",
                              "--calibration", "20")
    return tmp, train_out, package_out


def test_train_reports_lengths_split_and_epochs(built):
    tmp, out, _ = built
    assert "token lengths (entity+text)" in out and "split:" in out and "best epoch" in out
    summary = json.loads((tmp / "run" / "best" / "train_summary.json").read_text())
    assert len(summary["history"]) == 2 and summary["load"]["kept"] == N_FIXTURES
    assert summary["related_head"] and summary["train_related_counts"]["unrelated"] > 0
    assert "related_accuracy" in summary["history"][0]
    assert list((tmp / "run" / "trainer").glob("checkpoint-*/trainer_state.json"))


def test_train_says_how_many_entities_it_splits_at_random_and_how_it_holds_out_entities(tmp_path):
    """An entity with tweets with and without a time is split at random, with no gap: train says how many are; and
    with the entities holdout its split line gives neither fraction, which that holdout does not use."""
    from tests.conftest import _main
    from tests.test_curve import SEEN, write_replab

    write_replab(tmp_path / "replab")
    info = tmp_path / "replab" / "training" / "tweet_info" / f"{SEEN}.dat"
    info.write_text(info.read_text().replace('"1000"', '"not a time"', 1))
    args = ["train", "--data", str(tmp_path / "replab"), "--base", str(tmp_path / "absent"), "--out", str(tmp_path / "r")]
    status, out, _ = _main(*args, "--gap-fraction", "0.2")  # refused later, at the base: the split is printed first
    assert status == 2 and "note: 1 entities have tweets with and without a time: each is split at random, with no " \
        "gap" in out.splitlines(), out
    status, out, _ = _main(*args, "--holdout", "entities")
    assert status == 2 and "(12 entities held out whole, no gap)" in out and "note: 1 entities" not in out, out


def test_outputs_never_replace_another_kind_of_folder(built, tmp_path):
    """init-random over a checkpoint (both hold a config.json), package over a checkpoint, train's best/ over a
    random base: each refused in one line, the folder left as it is; its own kind is replaced."""
    tmp, _, _ = built
    shutil.copytree(tmp / "run" / "best", tmp_path / "best")
    before = sorted(p.name for p in (tmp_path / "best").iterdir())
    vocab = str(FIXTURES / "vocab.txt")
    line = refused("init-random", "--arch", "bert", "--size", "tiny", "--vocab", vocab, "--out", str(tmp_path / "best"))
    assert "best holds other files and no random_init.json: give a new or empty folder" in line
    line = refused("package", "--checkpoint", str(tmp / "run" / "best"), "--out", str(tmp_path / "best"))
    assert "best holds other files and no manifest.json" in line
    assert sorted(p.name for p in (tmp_path / "best").iterdir()) == before
    for _ in range(2):  # into a new folder, then over its own kind
        cli("init-random", "--arch", "bert", "--size", "tiny", "--vocab", vocab, "--out", str(tmp_path / "base"))


def test_a_users_file_or_folder_is_never_an_output(built, tmp_path):
    """A file where an output folder goes, a folder of the user's where a run or a report goes, and a file inside a
    bundle or checkpoint given to --json: refused in one line before any work, each left as it was."""
    tmp, _, _ = built
    data, vocab = str(FIXTURES / "tweets.csv"), str(FIXTURES / "vocab.txt")
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "report.md").write_text("mine")
    checkpoint = str(tmp / "run" / "best")
    lines = [
        refused("package", "--checkpoint", checkpoint, "--variants", "float32", "--out", str(tmp_path / "notes.txt")),
        refused("init-random", "--arch", "bert", "--size", "tiny", "--vocab", vocab, "--out", str(tmp_path / "notes.txt")),
        refused("package", "--checkpoint", checkpoint, "--variants", "float32,float16", "--out", str(tmp_path / "notes.txt")),
    ]
    assert all(line.endswith("notes.txt is a file, not a folder: give a new or empty folder") for line in lines), lines
    line = refused("train", "--data", data, "--base", str(tmp / "base"), "--epochs", "1", "--out", str(tmp_path / "mine"))
    assert line.endswith("mine holds other files and no run (run.json): give a new or empty folder")
    line = refused("report", "--checkpoint", checkpoint, "--bundles", str(tmp / "bundles"), "--out", str(tmp_path / "mine"))
    assert line.endswith("mine holds other files and no report (report.json): give a new or empty folder")
    assert "float32 given twice" in refused("package", "--checkpoint", checkpoint, "--variants", "float32,float32",
                                            "--out", str(tmp_path / "b"))
    assert "variants: none given" in refused("package", "--checkpoint", checkpoint, "--variants", ",,", "--out",
                                             str(tmp_path / "b"))
    shutil.copytree(tmp / "bundles" / "float32", tmp_path / "only" / "float32")
    line = refused("report", "--checkpoint", checkpoint, "--bundles", str(tmp_path / "only"), "--chosen", "dynamic-int8",
                   "--out", str(tmp_path / "r"))
    assert line.endswith("--chosen dynamic-int8: no such bundle in " + str(tmp_path / "only") + " (there: float32)")
    shutil.copytree(tmp / "bundles" / "float32", tmp_path / "only" / "float32-again")  # it would replace the first's row
    line = refused("report", "--checkpoint", checkpoint, "--bundles", str(tmp_path / "only"), "--out", str(tmp_path / "r"))
    assert line.endswith(f"{tmp_path / 'only'}: more than one float32 bundle (the report has a row per quantisation): "
                         "report on one bundle of each"), line
    shutil.rmtree(tmp_path / "only")
    bundle = tmp_path / "bundle"
    shutil.copytree(tmp / "bundles" / "float32", bundle)
    manifest = (bundle / "manifest.json").read_bytes()
    line = refused("evaluate", "--bundle", str(bundle), "--data", data, "--json", str(bundle / "manifest.json"))
    assert line.endswith("is a bundle, model, run, report or curve folder: give a file outside it")
    assert (bundle / "manifest.json").read_bytes() == manifest
    base = tmp_path / "base"  # a base's config.json is JSON as figures are: it was overwritten
    shutil.copytree(tmp / "base", base)
    config = (base / "config.json").read_bytes()
    line = refused("evaluate", "--bundle", str(bundle), "--data", data, "--json", str(base / "config.json"))
    assert line.endswith("is a bundle, model, run, report or curve folder: give a file outside it")
    assert (base / "config.json").read_bytes() == config
    (tmp_path / "project").mkdir()  # a folder of the user's own with a config.json of its own takes figures
    (tmp_path / "project" / "config.json").write_text("{}")
    cli("evaluate", "--bundle", str(bundle), "--data", data, "--json", str(tmp_path / "project" / "figures.json"))
    assert json.loads((tmp_path / "project" / "figures.json").read_text())["n"] > 0
    assert "is a folder" in refused("evaluate", "--bundle", str(bundle), "--data", data, "--json", "")
    # --json over the tweets it scores, over another file of the user's, or under a file: each was written (the
    # last after the whole evaluation, its error then "File exists")
    own = tmp_path / "data.csv"
    shutil.copy(data, own)
    evaluate = ["evaluate", "--bundle", str(bundle), "--data", str(own), "--json"]
    assert refused(*evaluate, str(own)).endswith("is the --data file: give another file name")
    assert refused(*evaluate, str(tmp_path / "notes.txt")).endswith("holds something else than JSON figures: give "
                                                                     "another file name")
    assert refused(*evaluate, str(tmp_path / "notes.txt" / "m.json")).endswith("a file stands where its folder would "
                                                                              "be: give a file name in a folder")
    # several variants inside a bundle's folder (they went in beside its files), and a bundle without a name (refused
    # only after every conversion, naming a temporary folder)
    assert refused("package", "--checkpoint", checkpoint, "--variants", "float32,float16", "--out", str(bundle)).endswith(
        "is a bundle, checkpoint or run folder: give the variants a folder of their own")
    assert refused("package", "--checkpoint", checkpoint, "--variants", "float32", "--name", "", "--out",
                   str(tmp_path / "b")) == "error: --name: give the bundle a name"
    assert own.read_bytes() == Path(data).read_bytes() and sorted(p.name for p in bundle.iterdir()) == [
        "manifest.json", "model.tflite", "vocab.txt"]
    assert (tmp_path / "notes.txt").read_text() == "mine" and (tmp_path / "mine" / "report.md").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base", "bundle", "data.csv", "mine", "notes.txt", "project"]
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["report.md"]


def test_damaged_weights_vocabularies_and_trainer_checkpoints_are_one_line(built, tmp_path):
    """A checkpoint's weights cut off or its vocabulary of garbage, a base's too, a vocabulary without BERT's special
    tokens for init-random, and a run resumed from a Trainer checkpoint cut off: one line each, no traceback."""
    tmp, _, _ = built
    data = str(FIXTURES / "tweets.csv")
    damaged = tmp_path / "damaged"
    shutil.copytree(tmp / "run" / "best", damaged)
    weights = (damaged / "model.safetensors").read_bytes()
    (damaged / "model.safetensors").write_bytes(weights[:200])
    for args in (["package", "--checkpoint", str(damaged), "--variants", "float32", "--out", str(tmp_path / "b")],
                 ["ensemble", "--checkpoint", str(tmp / "run" / "best"), "--checkpoint", str(damaged)]):
        line = refused(*args)
        assert line.startswith(f"error: checkpoint {damaged}: cannot be read (SafetensorError: "), line
    (damaged / "model.safetensors").write_bytes(weights)
    config = (damaged / "config.json").read_text()
    for name, text in (("config.json", json.dumps({**json.loads(config), "id2label": []})),
                       ("validation.json", "{cut off")):
        kept = (damaged / name).read_text()
        (damaged / name).write_text(text)
        line = refused("package", "--checkpoint", str(damaged), "--out", str(tmp_path / "b"))
        assert line.startswith(f"error: checkpoint {damaged}: unreadable ("), line
        (damaged / name).write_text(kept)
    (damaged / "config.json").write_text(json.dumps({**json.loads(config), "reputation_pooling": "max"}))
    line = refused("package", "--checkpoint", str(damaged), "--out", str(tmp_path / "b"))
    assert line.startswith(f"error: checkpoint {damaged}: config.json: reputation_pooling 'max' is not one of"), line
    (damaged / "config.json").write_text(config)
    (damaged / "vocab.txt").write_bytes(b"\xcd\xff garbage")
    assert f"checkpoint {damaged}'s vocabulary: cannot be read (UnicodeDecodeError" in refused(
        "package", "--checkpoint", str(damaged), "--out", str(tmp_path / "b"))
    (tmp_path / "abc.txt").write_text("a\nb\nc\n")
    line = refused("init-random", "--arch", "bert", "--size", "tiny", "--vocab", str(tmp_path / "abc.txt"), "--out",
                   str(tmp_path / "base"))
    assert line.startswith(f"error: vocabulary {tmp_path / 'abc.txt'}: cannot be read (ValueError: ") and "lacks special" in line
    base = tmp_path / "bad-base"
    shutil.copytree(tmp / "base", base)
    (base / "model.safetensors").write_bytes(b"x" * 100)
    line = refused("train", "--data", data, "--base", str(base), "--epochs", "1", "--out", str(tmp_path / "r"))
    assert line.startswith(f"error: base {base}: cannot be read (") and "Traceback" not in line
    shutil.copytree(tmp / "run", tmp_path / "run")
    run_file = tmp_path / "run" / "run.json"
    run_file.write_text(json.dumps({**json.loads(run_file.read_text()), "finished": False}))  # cut off
    last = max((tmp_path / "run" / "trainer").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    optimizer = last / "optimizer.pt"
    optimizer.write_bytes(optimizer.read_bytes()[:1000])
    line = refused("train", "--data", data, "--base", str(tmp / "base"), "--out", str(tmp_path / "run"), "--epochs", "2",
                   "--val-fraction", "0.25", "--gap-fraction", "0", "--learning-rate", "1e-3")
    assert line.startswith(f"error: Trainer checkpoint {last} (cut off or damaged: delete it to resume from the one "
                           "before, or give a new --out): cannot be read (ValueError: optimizer.pt: "), line


def test_training_resumes_from_its_last_checkpoint(built, tmp_path):
    """A run cut off after its last checkpoint resumes there: nothing is trained again, the history and best epoch
    come back from the checkpoint; a finished run resumes nothing, and other settings are refused."""
    tmp, _, _ = built
    import shutil

    shutil.copytree(tmp / "run", tmp_path / "run")
    run_file = tmp_path / "run" / "run.json"
    state = json.loads(run_file.read_text())
    assert state["finished"]
    run_file.write_text(json.dumps({**state, "finished": False}))  # as if cut off before it could say so
    best = tmp_path / "run" / "best"
    before = (json.loads((best / "train_summary.json").read_text())["history"], (best / "model.safetensors").read_bytes())
    args = ["train", "--data", str(FIXTURES / "tweets.csv"), "--base", str(tmp / "base"), "--out", str(tmp_path / "run"),
            "--epochs", "2", "--val-fraction", "0.25", "--gap-fraction", "0", "--learning-rate", "1e-3"]
    out = cli(*args)
    assert "resuming from checkpoint-" in out and "validation accuracy" not in out
    after = (json.loads((best / "train_summary.json").read_text())["history"], (best / "model.safetensors").read_bytes())
    assert after == before and json.loads(run_file.read_text())["finished"]
    assert "training finished earlier" in cli(*args)
    assert "started with other settings (learning_rate)" in refused(*args[:-1], "5e-4")
    run_file.write_text("{")
    assert "run.json: not a run record this build wrote" in refused(*args)


def test_a_line_refused_after_its_run_was_claimed_can_be_corrected(built, tmp_path):
    """A line refused once its run is claimed (here: ``--init`` of a checkpoint that reads other input) trained
    nothing, so the corrected line starts the run again in the same --out; it used to be refused as another run
    ("started with other settings (input_format)"). A run that has kept a checkpoint still refuses other settings."""
    tmp, _, _ = built
    args = ["train", "--data", str(FIXTURES / "tweets.csv"), "--init", str(tmp / "run" / "best"), "--out",
            str(tmp_path / "run"), "--epochs", "1", "--val-fraction", "0.25", "--gap-fraction", "0"]
    assert "reads entity+text input, not text" in refused(*args, "--input-format", "text")
    assert (tmp_path / "run" / "run.json").is_file()
    out = cli(*args)
    assert "was started with other settings (input_format) and trained nothing: started again" in out
    assert json.loads((tmp_path / "run" / "run.json").read_text())["finished"]
    (tmp_path / "run" / "run.json").write_text(json.dumps(
        {**json.loads((tmp_path / "run" / "run.json").read_text()), "finished": False}))
    assert "started with other settings (learning_rate)" in refused(*args, "--learning-rate", "1e-4")


def test_a_run_directory_in_use_by_another_command_is_refused(tmp_path, capsys):
    """A command running in a run directory holds it: a second command there is refused, instead of finding a run
    that "trained nothing" yet and starting it again under the first one (or both writing its checkpoints). Once the
    first ends, the second starts its run there."""
    from model_build.errors import BuildError
    from model_build.runs import RunKind, claim_run

    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from pathlib import Path; from model_build.runs "
                               "import RunKind, claim_run; claim_run(Path(sys.argv[1]), {'seed': 1}, RunKind.TRAIN); "
                               "print('claimed', flush=True); time.sleep(120)", str(out)],
                              cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "claimed\n"
        with pytest.raises(BuildError, match="is in use by another command still running: wait for it to end"):
            claim_run(out, {"seed": 2}, RunKind.TRAIN)
        assert json.loads((out / "run.json").read_text())["settings"] == {"seed": 1}
    finally:
        holder.kill()
        holder.wait()
    assert claim_run(out, {"seed": 2}, RunKind.TRAIN) is False
    assert "trained nothing: started again" in capsys.readouterr().out
    assert json.loads((out / "run.json").read_text())["settings"] == {"seed": 2}


def test_a_run_stopped_early_and_cut_off_before_it_said_so_trains_no_more(built, tmp_path):
    """Early stopping saves a checkpoint with the Trainer told to stop; a run whose record still says unfinished (as
    one cut off between that checkpoint and its end leaves it) and rerun ends there: transformers would clear that
    flag on resuming and train another epoch, whose validation could then pick a best/ the uncut run never made."""
    tmp, _, _ = built
    args = ["train", "--data", str(FIXTURES / "tweets.csv"), "--base", str(tmp / "base"), "--out", str(tmp_path / "run"),
            "--epochs", "6", "--patience", "1", "--val-fraction", "0.25", "--gap-fraction", "0", "--learning-rate",
            "1e-9"]  # so small a rate that the first epoch stays the best: it stops after the second
    cli(*args)
    run_file = tmp_path / "run" / "run.json"
    checkpoints = sorted(p.name for p in (tmp_path / "run" / "trainer").glob("checkpoint-*"))
    history = json.loads((tmp_path / "run" / "best" / "train_summary.json").read_text())["history"]
    assert len(history) == 2 and checkpoints
    run_file.write_text(json.dumps({**json.loads(run_file.read_text()), "finished": False}))
    out = cli(*args)
    assert "stopped there: nothing more to train" in out and "validation accuracy" not in out
    assert sorted(p.name for p in (tmp_path / "run" / "trainer").glob("checkpoint-*")) == checkpoints
    assert json.loads((tmp_path / "run" / "best" / "train_summary.json").read_text())["history"] == history
    assert json.loads(run_file.read_text())["finished"]


def test_a_run_cut_off_in_its_last_validation_validates_that_epoch_when_rerun(built, tmp_path):
    """The last step's checkpoint is saved with the Trainer told to stop, before the last epoch's validation: a run
    cut off in that validation and rerun validates that epoch (resumed, the Trainer trained and validated nothing
    more, and best/ and the history lacked the last epoch)."""
    tmp, _, _ = built
    shutil.copytree(tmp / "run", tmp_path / "run")
    run_file, best = tmp_path / "run" / "run.json", tmp_path / "run" / "best"
    history = json.loads((best / "train_summary.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [1, 2]
    (state_file,) = (tmp_path / "run" / "trainer").glob("checkpoint-*/trainer_state.json")
    state = json.loads(state_file.read_text())
    # as saved at the last step (a checkpoint step), told to stop, before that epoch's validation
    state["stateful_callbacks"]["TrainerControl"]["args"]["should_training_stop"] = True
    state["stateful_callbacks"]["BestEpoch"]["args"].update(
        history=history[:1], validated_epoch=1, best_macro_f1=history[0]["macro_f1"], bad_epochs=0)
    state_file.write_text(json.dumps(state))
    run_file.write_text(json.dumps({**json.loads(run_file.read_text()), "finished": False}))
    out = cli("train", "--data", str(FIXTURES / "tweets.csv"), "--base", str(tmp / "base"), "--out", str(tmp_path / "run"),
              "--epochs", "2", "--val-fraction", "0.25", "--gap-fraction", "0", "--learning-rate", "1e-3")
    assert "epoch 2: validation" in out and "nothing more to train" not in out
    assert json.loads((best / "train_summary.json").read_text())["history"] == history
    assert json.loads(run_file.read_text())["finished"]


def test_a_run_cut_off_inside_an_epoch_resumes_to_the_same_weights(built, tmp_path):
    """A run stopped right after a checkpoint inside its second epoch (as by Ctrl-C or a reboot) and rerun ends with
    the same weights, bit for bit, as the same run never stopped; so does one stopped inside its first epoch. Its
    summary's training time counts the time up to the checkpoint it resumed from too."""
    import torch
    from safetensors.torch import load_file

    tmp, _, _ = built

    def run(out: Path) -> str:
        return cli("train", "--data", str(FIXTURES / "tweets.csv"), "--base", str(tmp / "base"), "--out", str(out),
                   "--epochs", "2", "--val-fraction", "0.25", "--gap-fraction", "0", "--learning-rate", "1e-3",
                   "--batch-size", "4", "--checkpoint-every", "3", "--threads", "1")

    def final_weights(out: Path) -> dict:
        (last,) = (out / "trainer").glob("checkpoint-*")  # the run keeps its last checkpoint only: its final one
        return load_file(str(last / "model.safetensors"))

    run(tmp_path / "whole")  # 33 training tweets in batches of 4: 9 steps an epoch
    whole = final_weights(tmp_path / "whole")

    for step in (12, 6):
        out = tmp_path / f"stopped-{step}"
        with stopped_after_save(step):
            run(out)
        state_file = out / "trainer" / f"checkpoint-{step}" / "trainer_state.json"
        state = json.loads(state_file.read_text())
        assert state["stateful_callbacks"]["Elapsed"]["args"]["seconds"] > 0
        state["stateful_callbacks"]["Elapsed"]["args"]["seconds"] = 1000.0  # as if the first sitting took that long
        state_file.write_text(json.dumps(state))
        started = time.monotonic()
        assert f"resuming from checkpoint-{step}" in run(out)
        sitting = time.monotonic() - started
        resumed = final_weights(out)
        assert resumed.keys() == whole.keys() and all(torch.equal(resumed[k], whole[k]) for k in whole), step
        seconds = json.loads((out / "best" / "train_summary.json").read_text())["seconds"]
        assert 1000 < seconds <= 1000 + sitting, (step, seconds, sitting)  # both sittings, not only the last


def test_a_run_cut_off_while_it_saved_a_checkpoint_resumes_from_the_one_before(tiny_base, tmp_path):
    """Ctrl-C (or a kill) while the Trainer saves a checkpoint leaves its folder without trainer_state.json, which
    the Trainer writes last (after the weights, optimizer and generators, before it removes the older checkpoint):
    the same line rerun, as the interrupted command says, resumes from the checkpoint before it and ends with the
    same weights as a run never cut off. It was refused as a damaged checkpoint, to be deleted by hand."""
    import torch
    from safetensors.torch import load_file
    from transformers.trainer_callback import TrainerState

    def run(out: Path) -> str:
        return cli("train", "--data", str(FIXTURES / "tweets.csv"), "--base", str(tiny_base), "--out", str(out),
                   "--epochs", "2", "--val-fraction", "0.25", "--gap-fraction", "0", "--learning-rate", "1e-3",
                   "--batch-size", "4", "--checkpoint-every", "3", "--threads", "1")

    def final_weights(out: Path) -> dict:
        (last,) = (out / "trainer").glob("checkpoint-*")
        return load_file(str(last / "model.safetensors"))

    run(tmp_path / "whole")
    whole = final_weights(tmp_path / "whole")
    saved = TrainerState.save_to_json

    def cut_off_at_6(state, path):
        if state.global_step == 6:
            raise Stopped
        return saved(state, path)

    out = tmp_path / "cut"
    with mock.patch.object(TrainerState, "save_to_json", cut_off_at_6), pytest.raises(Stopped):
        run(out)
    cut = out / "trainer" / "checkpoint-6"
    assert (cut / "model.safetensors").is_file() and not (cut / "trainer_state.json").exists()
    assert (out / "trainer" / "checkpoint-3" / "trainer_state.json").is_file()
    rerun = run(out)
    assert "checkpoint-6 was cut off while it was saved" in rerun and "resuming from checkpoint-3" in rerun, rerun
    resumed = final_weights(out)
    assert resumed.keys() == whole.keys() and all(torch.equal(resumed[k], whole[k]) for k in whole)


def test_a_run_that_keeps_the_handles_is_served_with_them(built, tmp_path):
    """--keep-mentions: the checkpoint and its bundle read @handles as written, so two tweets that differ only in the
    handle get different scores, where the default's bundle reads both as @user; --init keeps its own settings."""
    from model_build.checkpoint import Checkpoint

    tmp, _, _ = built
    data = str(FIXTURES / "tweets.csv")
    train = ["train", "--data", data, "--epochs", "1", "--val-fraction", "0.25", "--gap-fraction", "0", "--threads", "2",
             "--keep-mentions"]
    cli(*train, "--base", str(tmp / "base"), "--out", str(tmp_path / "run"))
    assert Checkpoint.load(tmp_path / "run" / "best").text_settings.mention_token is None
    cli("package", "--data", data, "--checkpoint", str(tmp_path / "run" / "best"), "--variants", "dynamic-int8",
        "--out", str(tmp_path / "bundles"), "--name", "tiny-handles", "--version", "1.0.0")
    tweets, entities = ["great day @acme", "great day @user"], ["acme", "acme"]
    kept = Classifier(Bundle.load(tmp_path / "bundles")).classify(tweets, entities)
    anonymised = Classifier(Bundle.load(tmp / "bundles" / "dynamic-int8")).classify(tweets, entities)
    assert kept[0].scores != kept[1].scores and anonymised[0].scores == anonymised[1].scores
    assert "--keep-mentions goes with --base" in refused(*train, "--init", str(tmp / "run" / "best"), "--out",
                                                         str(tmp_path / "again"))


def test_every_variant_is_a_valid_bundle(built):
    tmp, _, out = built
    sizes = {}
    for variant in VARIANTS:
        bundle = Bundle.load(tmp / "bundles" / variant)
        manifest = bundle.manifest()
        assert manifest["quantization"] == variant and manifest["version"] == "1.2.3"
        assert manifest["runtimes"] and manifest["command"].startswith("python -m model_build package")
        assert manifest["metrics"]["validation"]["n"] == manifest["training"]["validation_examples"]
        assert not {"bundle", "name", "version"} & set(manifest["metrics"]["validation"])  # no temporary directory
        assert manifest["outputs"] == ["polarity", "related"] and bundle.has_related
        assert manifest["metrics"]["relatedness"]["labels"] == ["unrelated", "related"]
        assert set(manifest["training"]["train_label_counts"]) == {"positive", "neutral", "negative"}
        assert not list((tmp / "bundles").glob(".*tmp*"))  # nothing half-written left behind
        sizes[variant] = bundle.model_bytes
    assert sizes["dynamic-int8"] < sizes["float16"] < sizes["float32"]
    assert "package: wrote" in out
    assert not [noise for noise in ("absl::InitializeLog", "cuda drivers", "cuInit") if noise in out]  # TensorFlow's start


def test_variants_agree_with_the_framework_model(built):
    tmp, _, _ = built
    checkpoint = tmp / "run" / "best"
    report = _agreement(checkpoint, tmp / "bundles")
    print(json.dumps(report, indent=1))
    for variant, tolerance in {**TOLERANCE, "full-int8": FULL_INT8_TOLERANCE}.items():
        assert report[variant]["relative_max_error"] <= tolerance, report
        assert report[variant]["argmax_agreement"] >= 0.9, report
        assert report[variant]["related_max_error"] <= tolerance, report


def test_evaluate_and_report_commands(built):
    tmp, _, _ = built
    data = str(FIXTURES / "tweets.csv")
    out = cli("evaluate", "--bundle", str(tmp / "bundles" / "dynamic-int8"), "--data", data, "--json", str(tmp / "eval.json"))
    metrics = json.loads((tmp / "eval.json").read_text())
    assert metrics["relatedness"]["n"] == N_FIXTURES and metrics["relatedness"]["threshold"] == 0.5
    assert "relatedness at 0.5:" in out  # the bundle's threshold: none stated, so 0.5
    assert metrics["n"] == N_POLARITY and 0 <= metrics["accuracy"] <= 1 and metrics["model_bytes"] > 0
    assert set(metrics["per_class"]) == {"positive", "neutral", "negative"} and len(metrics["confusion"]) == 3
    assert metrics["latency"]["median_ms"] > 0 and "macro-F1" in out
    assert metrics["measured_on"] == {"data": str(FIXTURES / "tweets.csv"), "full_names": False, "part": "all"}
    out = cli("evaluate", "--bundle", str(tmp / "bundles" / "float32"), "--data", data, "--holdout",
              "--json", str(tmp / "eval.json"))
    held_out = json.loads((tmp / "run" / "best" / "train_summary.json").read_text())["validation_examples"]
    assert f"n={held_out} " in out and json.loads((tmp / "eval.json").read_text())["measured_on"]["part"] == "validation"
    entry_point("report", "--data", data, "--checkpoint", str(tmp / "run" / "best"), "--bundles", str(tmp / "bundles"),
                "--out", str(tmp / "report"))  # the real entry point: without TensorFlow, as train
    table = (tmp / "report" / "report.md").read_text()
    for row in ("TF-IDF + logistic regression", "PyTorch float32", *[f"TFLite {v}" for v in VARIANTS],
                "Relatedness (RELATED / UNRELATED)"):
        assert row in table
    for png in ("confusion.png", "tradeoffs.png"):
        assert (tmp / "report" / png).read_bytes()[:4] == b"\x89PNG"


def _agreement(checkpoint, bundles_dir, bucket: int = 1) -> dict:
    """PyTorch outputs against each variant's, on the fixture tweets at their own lengths (``bucket`` 1) or padded
    to a multiple of ``bucket``: polarity logits, and relatedness probabilities where the checkpoint has that head."""
    from model_build.checkpoint import Checkpoint
    from model_build.scoring import predict

    checkpoint = Checkpoint.load(checkpoint)
    encoder = checkpoint.encoder()
    encodings = encoder.encode([r["text"] for r in FIXTURE_ROWS], [r["entity"] for r in FIXTURE_ROWS])
    reference, related = predict(checkpoint.model(), encoder, encodings)
    report = {}
    for variant in VARIANTS:
        outputs = Classifier(Bundle.load(bundles_dir / variant), threads=1, bucket=bucket).logits(encodings)
        logits = outputs[:, :3]
        report[variant] = {
            "relative_max_error": float(np.abs(logits - reference).max() / np.abs(reference).max()),
            "argmax_agreement": float((logits.argmax(1) == reference.argmax(1)).mean()),
        }
        if related is not None:
            report[variant]["related_max_error"] = float(np.abs(outputs[:, 3] - related).max())
    return report


@pytest.mark.parametrize("arch, pooling", [("mobilebert", "cls"), ("bert", "mean"), ("bert", "mean-cls")])
def test_random_bases_convert_in_all_four_variants(tmp_path, arch, pooling):
    """A small random MobileBERT (NoNorm, bottlenecks) read through [CLS], a BERT read through the tokens' mean and
    one whose relatedness head reads [CLS] beside the mean (mean-cls), saved in HF layout and packaged through the
    same path: every variant follows the PyTorch model, tweets run at their own lengths and padded as served (the
    mean must leave the padding out); full-int8 follows it for BERT."""
    from model_build.base import Architecture
    from model_build.checkpoint import Checkpoint, DataSpec, save_checkpoint
    from model_build.data import LABELS
    from model_build.model import ReputationModel
    from model_build.random_init import Size, save_random_model
    from model_build.settings import Pooling
    from model_build.splits import SplitSpec

    arch, pooling = Architecture(arch), Pooling(pooling)
    base = save_random_model(arch, Size.TINY, FIXTURES / "vocab.txt", tmp_path / arch.value)
    data = DataSpec(str(FIXTURES / "tweets.csv"), language=None, unrelated=True,
                    holdout=SplitSpec(val_fraction=0.25, gap_fraction=0))
    checkpoint = tmp_path / "checkpoint"
    save_checkpoint(checkpoint, ReputationModel.from_base(str(base), LABELS, related=True, pooling=pooling),
                    FIXTURES / "vocab.txt", TextSettings(max_length=64),
                    {"config": {"input_format": "entity+text", "base": str(base)}, "data": data.to_dict()})
    assert Pooling.of(Checkpoint.load(checkpoint).model().config) is pooling  # read back from config.json
    cli("package", "--checkpoint", str(checkpoint), "--variants", ",".join(VARIANTS),
        "--out", str(tmp_path / "bundles"), "--name", f"{arch.value}-random", "--calibration", "20")
    for bucket in (1, 16):
        report = _agreement(checkpoint, tmp_path / "bundles", bucket)
        print(f"{arch.value} ({pooling.value} pooling, bucket {bucket}) agreement with PyTorch:", json.dumps(report))
        for variant, tolerance in TOLERANCE.items():
            assert report[variant]["relative_max_error"] <= tolerance, report
            assert report[variant]["argmax_agreement"] == 1.0, report
            assert report[variant]["related_max_error"] <= tolerance, report
        if arch is Architecture.BERT:
            assert report["full-int8"]["relative_max_error"] <= FULL_INT8_TOLERANCE, report
        assert np.isfinite(report["full-int8"]["relative_max_error"])  # random MobileBERT: about 0.8, not traced


@pytest.mark.parametrize("args, message", [
    (["evaluate", "--data", str(FIXTURES / "tweets.csv"), "--bundle", "/nowhere"], "error: bundle /nowhere: not a directory"),
    (["evaluate", "--data", "/nowhere", "--bundle", str(FIXTURES / "tiny-bundle")], "error: /nowhere: no such file"),
    (["evaluate", "--holdout", "--split", "test", "--data", str(FIXTURES / "tweets.csv"), "--bundle",
      str(FIXTURES / "tiny-bundle")], "--split and --language do not apply"),
    (["evaluate", "--full-names", "--data", str(FIXTURES / "tweets.csv"), "--bundle", str(FIXTURES / "tiny-bundle")],
     "no entity full names"),
    (["evaluate", "--split", "test", "--data", str(FIXTURES / "tweets.csv"), "--bundle", str(FIXTURES / "tiny-bundle")],
     "--split applies to RepLab's folder, not to a CSV or JSONL file"),
    (["train", "--data", str(FIXTURES / "tweets.csv"), "--holdout", "entities", "--out", "/nonexistent/run"],
     "--holdout entities validates on 12 of RepLab's entities (model_build/splits.py): none is in"),
    (["train", "--data", str(FIXTURES / "tweets.csv"), "--full-names", "0.5", "--out", "/nonexistent/run"],
     "has none (RepLab's entity_name)"),
    (["train", "--data", str(FIXTURES / "tweets.csv"), "--related-weight", "-1", "--out", "/nonexistent/run"],
     "the relatedness loss's weight must be 0 or more, got -1.0"),  # it trained the head to be wrong, with --init
])
def test_build_commands_fail_with_one_line(args, message):
    assert message in refused(*args)


@pytest.mark.parametrize("option, value, message", [
    ("--threads", "-1", "argument --threads: must be from 1 to 256, got -1"),
    ("--threads", "100000", "argument --threads: must be from 1 to 256, got 100000"),
    ("--seed", "-1", "argument --seed: must be from 0 to 4294967295, got -1"),
    ("--learning-rate", "-1", "argument --learning-rate: expected a number from 0 to 1, got '-1'"),
    ("--learning-rate", "1e308", "argument --learning-rate: must be at most 1, got 1e308"),
    ("--extra-weight", "inf", "argument --extra-weight: expected a finite number, got 'inf'"),
    ("--related-weight", "nan", "argument --related-weight: expected a finite number, got 'nan'"),
    ("--rdrop", "1e308", "argument --rdrop: must be at most 1000, got 1e308"),
    ("--limit", "0", "argument --limit: must be at least 1, got 0"),
])
def test_bad_training_options_are_argparse_lines_before_a_run_is_claimed(tmp_path, capsys, option, value, message):
    """Values PyTorch or the Trainer would refuse with a traceback after run.json was written (so the corrected line
    was then refused as other settings)."""
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--data", str(FIXTURES / "tweets.csv"), "--out", str(out), option, value])
    assert exit_.value.code == 2 and capsys.readouterr().err.strip().endswith(message) and not out.exists()


def test_an_interrupted_command_says_how_to_go_on(monkeypatch, capsys):
    """Ctrl-C (here raised inside the command) is one line and status 130, not a KeyboardInterrupt traceback."""
    import model_build.cli as cli_module

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_module, "cmd_soup", interrupted)  # build_parser reads the name when main calls it
    assert main(["soup", "--checkpoint", "a", "--checkpoint", "b", "--out", "c"]) == 130
    assert capsys.readouterr().err.strip() == ("interrupted: run the same line again to go on (train and pretrain "
                                               "resume from their last checkpoint)")



def test_json_never_replaces_a_file_of_one_labelled_tweet(tmp_path):
    """A JSONL file of one labelled tweet (a feedback file's first correction, a user's own file) is one JSON
    document, as figures are: --json over it was written, the tweet lost. Refused in one line, before the work, as a
    file of several tweets is; a file of figures written before is still replaced."""
    for name in ("feedback.jsonl", "mine.json"):
        tweet = tmp_path / name
        tweet.write_text('{"text": "my Acme phone died again", "label": "negative", "entity": "Acme"}\n')
        kept = tweet.read_bytes()
        line = refused("evaluate", "--bundle", str(FIXTURES / "tiny-bundle"), "--data", str(FIXTURES / "tweets.csv"),
                       "--json", str(tweet))
        assert line.endswith("holds something else than JSON figures: give another file name"), line
        assert tweet.read_bytes() == kept
    figures = tmp_path / "figures.json"
    figures.write_text('{"n": 1, "accuracy": 1.0}')
    cli("evaluate", "--bundle", str(FIXTURES / "tiny-bundle"), "--data", str(FIXTURES / "tweets.csv"), "--threads", "1",
        "--json", str(figures))
    assert json.loads(figures.read_text())["n"] > 1


def test_evaluate_says_when_there_is_nothing_to_score(tmp_path):
    """A bundle trained on every tweet has no validation split to hold out; data without a polarity label has
    nothing to score: one line each, not a traceback."""
    bundle = tmp_path / "everything"
    shutil.copytree(FIXTURES / "tiny-bundle", bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["training"]["data"]["val_fraction"] = 0
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    assert "trained on every tweet" in refused("evaluate", "--holdout", "--data", str(FIXTURES / "tweets.csv"),
                                               "--bundle", str(bundle))
    unrelated = tmp_path / "unrelated.csv"
    unrelated.write_text("text,label,entity,related\nzorblax is my cat's name,,Zorblax,unrelated\n")
    assert "no tweets with a polarity label" in refused("evaluate", "--data", str(unrelated), "--bundle",
                                                        str(FIXTURES / "tiny-bundle"))


def test_evaluate_scores_relatedness_only_where_a_pair_model_has_an_entity(tmp_path):
    """A pair model gives no verdict on a tweet without an entity: relatedness is scored on the others, and says so."""
    data = tmp_path / "mixed.csv"
    data.write_text("text,label,entity,related\nAcme recalls phones,negative,Acme,related\n"
                    "great phone,positive,,related\nlunch at acme cafe,,Acme,unrelated\n")
    out = cli("evaluate", "--data", str(data), "--bundle", str(FIXTURES / "tiny-related-bundle"), "--threads", "1",
              "--json", str(tmp_path / "m.json"))
    figures = json.loads((tmp_path / "m.json").read_text())
    assert figures["n"] == 2 and figures["relatedness"]["n"] == 2 and figures["relatedness"]["without_entity"] == 1
    assert "(1 tweets without an entity not scored): n=2" in out and figures["read_without_entity"] == 1
    assert "n=2  accuracy=" in out and "(1 without an entity, read as the tweet alone: the bundle learnt" in out


def test_the_ambiguous_names_the_readme_scores_are_one_brand_tweet_and_one_other_sense_each(tmp_path):
    """docs/ambiguous-names.csv, the README's command on it: every name once about the brand (with polarity) and
    once in its other sense, all 40 scored for relatedness at the bundle's threshold, the line it prints ours."""
    from model_build.data import load_table
    from tests.conftest import DEFAULT_BUNDLE

    examples, report = load_table(ROOT / "docs" / "ambiguous-names.csv", unrelated=True)
    assert report.kept == len(examples) == 40 and not report.dropped
    by_name = {name: sorted((e.related, e.label is not None) for e in examples if e.entity == name)
               for name in {e.entity for e in examples}}
    assert len(by_name) == 20 and set(map(tuple, by_name.values())) == {((False, False), (True, True))}
    out = cli("evaluate", "--data", str(ROOT / "docs" / "ambiguous-names.csv"), "--bundle", str(DEFAULT_BUNDLE),
              "--threads", "1", "--json", str(tmp_path / "ambiguous.json"))
    threshold = Bundle.load(DEFAULT_BUNDLE).related_threshold
    figures = json.loads((tmp_path / "ambiguous.json").read_text())
    assert figures["relatedness"]["n"] == 40 and figures["relatedness"]["threshold"] == threshold
    assert f"relatedness at {threshold}: n=40" in out


def test_evaluate_pairs_replab_tweets_with_full_names_on_request(tmp_path):
    from tests.test_data import write_odd_replab

    write_odd_replab(tmp_path)  # 4 English tweets with polarity, 1 unrelated: Bank of America (BoA) and BMW (BMW AG)
    common = ("evaluate", "--data", str(tmp_path), "--bundle", str(FIXTURES / "tiny-bundle"))
    plain = cli(*common)
    assert "n=4 " in plain and "full name" not in plain
    assert "evaluate: 5 of 5 tweets paired with their entity's full name" in cli(*common, "--full-names")
    # a bundle that reads those full names as the queries (its entity_aliases) says how many tweets it read so
    aliased = with_manifest(FIXTURES / "tiny-bundle", tmp_path / "aliased",
                            entity_aliases={"BoA": "Bank of America", "BMW AG": "BMW"})
    out = cli("evaluate", "--data", str(tmp_path), "--bundle", str(aliased), "--full-names", "--json",
              str(tmp_path / "aliased.json"))
    assert "(4 with an entity named by one of the bundle's entity_aliases, read as the name it maps to)" in out
    figures = json.loads((tmp_path / "aliased.json").read_text())
    assert figures["read_by_alias"] == 4 and figures["measured_on"] == {
        "data": str(tmp_path), "full_names": True, "part": "all", "split": "training", "language": "EN"}
    assert "entity_aliases" not in cli("evaluate", "--data", str(tmp_path), "--bundle", str(aliased))  # queries


def test_a_data_table_without_entities_is_refused_for_pairs(tmp_path, tiny_base):
    """A --data table without an entity column trained an (entity, tweet) pair model on the tweets alone, without a
    word (an --extra file so is refused): its bundle said it reads pairs and was served pairs it never learnt.
    Refused in one line before a run, as an --extra file is, pointing to --input-format text; a table where only
    some tweets lack one gets a note."""
    rows = [r for r in FIXTURE_ROWS if r["label"]]
    alone = tmp_path / "alone.csv"
    alone.write_text("text,label\n" + "".join(f'"{r["text"]}",{r["label"]}\n' for r in rows), encoding="utf-8")
    common = ("--base", str(tiny_base), "--epochs", "1", "--val-fraction", "0.25", "--gap-fraction", "0",
              "--threads", "1")
    line = refused("train", "--data", str(alone), "--out", str(tmp_path / "pairs"), *common)
    assert line.endswith("alone.csv: no tweet has an entity, and the model reads (entity, tweet) pairs: add an entity "
                         "column (your brand's name as you will send it to /classify), or train on the tweets alone "
                         "(--input-format text)"), line
    assert not (tmp_path / "pairs").exists()
    assert "best epoch 1" in cli("train", "--data", str(alone), "--input-format", "text", "--out",
                                 str(tmp_path / "text"), *common)
    some = tmp_path / "some.csv"
    some.write_text("text,label,entity\n" + "".join(f'"{r["text"]}",{r["label"]},{r["entity"] if i % 2 else ""}\n'
                                                     for i, r in enumerate(rows)), encoding="utf-8")
    out = cli("train", "--data", str(some), "--out", str(tmp_path / "some"), *common)
    assert f"note: {some}: {(len(rows) + 1) // 2} of {len(rows)} tweets have no entity" in out, out


def test_own_tweets_are_added_with_their_weight(built, tmp_path):
    """--extra adds a user's labelled tweets to the training data, their losses weighted by --extra-weight."""
    from model_build.checkpoint import DataSpec

    brand = tmp_path / "brand.csv"
    brand.write_text("text,label,entity,related\nLove the new Zorblax phone,positive,Zorblax,\n"
                     "Zorblax support never answers,negative,Zorblax,\nzorblax is my cat's name,,Zorblax,unrelated\n",
                     encoding="utf-8")
    spec = DataSpec(str(FIXTURES / "tweets.csv"), unrelated=True, extra=(str(brand),), extra_weight=4.0)
    examples, report = spec.load()
    assert report.kept == N_FIXTURES + 3 and [e.weight for e in examples[-3:]] == [4.0] * 3
    assert {e.weight for e in examples[:-3]} == {1.0} and DataSpec.from_dict(spec.to_dict()) == spec
    tmp, _, _ = built
    cli("train", "--data", str(FIXTURES / "tweets.csv"), "--extra", str(brand), "--extra-weight", "4", "--base",
        str(tmp / "base"), "--out", str(tmp_path / "run"), "--epochs", "1", "--val-fraction", "0.25", "--gap-fraction", "0")
    summary = json.loads((tmp_path / "run" / "best" / "train_summary.json").read_text())
    data = summary["data"]
    assert data["extra"] == [str(brand)] and data["extra_weight"] == 4.0
    assert summary["load"]["files"] == {str(brand): {"kept": 3, "dropped": {}, "without_entity": 0}}
    # A file that grew since (a feedback file still collecting): the same line is another run, and its tweets no
    # longer split as when the run trained.
    with brand.open("a", encoding="utf-8") as fh:
        fh.write("Zorblax fixed my phone in a day,positive,Zorblax,\n")
    def train(extra: Path, out: Path, *more: str) -> list[str]:
        return ["train", "--data", str(FIXTURES / "tweets.csv"), "--extra", str(extra), "--extra-weight", "4",
                "--base", str(tmp / "base"), "--out", str(out), "--epochs", "1", "--val-fraction", "0.25",
                "--gap-fraction", "0", *more]

    assert "was started with other settings (extra_sha256." in refused(*train(brand, tmp_path / "run"))
    run_file = tmp_path / "run" / "run.json"  # a run started before the content was recorded: not checked
    record = json.loads(run_file.read_text())
    del record["settings"]["extra_sha256"]
    run_file.write_text(json.dumps(record))
    out = cli(*train(brand, tmp_path / "run"))
    assert "content: not checked" in out and "training finished earlier" in out
    assert f"and {brand}: these tweets split otherwise than when the run trained" in refused(
        "package", "--checkpoint", str(tmp_path / "run" / "best"), "--out", str(tmp_path / "b"))
    own = tmp_path / "own.csv"  # the same for a --data file
    shutil.copy(FIXTURES / "tweets.csv", own)
    line = ["train", "--data", str(own), "--base", str(tmp / "base"), "--out", str(tmp_path / "own"), "--epochs", "1",
            "--val-fraction", "0.25", "--gap-fraction", "0"]
    cli(*line)
    with own.open("a", encoding="utf-8") as fh:
        fh.write("Zorblax fixed my phone in a day,positive,Zorblax\n")
    assert "was started with other settings (data_sha256." in refused(*line)
    # A file of no usable tweet, or without entities for a model of (entity, tweet) pairs, is refused before a run.
    (tmp_path / "empty.csv").write_text("text,label,entity\n,positive,Zorblax\n", encoding="utf-8")
    assert "empty.csv: no usable examples (dropped: empty or missing text: 1)" in refused(
        *train(tmp_path / "empty.csv", tmp_path / "x"))
    (tmp_path / "noentity.csv").write_text("text,label\nLove it,positive\n", encoding="utf-8")
    assert "noentity.csv: no tweet has an entity, and the model reads (entity, tweet) pairs" in refused(
        *train(tmp_path / "noentity.csv", tmp_path / "x"))
    assert not (tmp_path / "x").exists()
    assert "this is a bundle; give the checkpoint it was packaged from" in refused(
        "train", "--data", str(FIXTURES / "tweets.csv"), "--init", str(tmp / "bundles" / "dynamic-int8"), "--out",
        str(tmp_path / "x"))
    assert "empty.csv: not a directory (a 'train' run's best/)" in refused(
        "train", "--data", str(FIXTURES / "tweets.csv"), "--init", str(tmp_path / "empty.csv"), "--out", str(tmp_path / "x"))


def test_a_bundle_trained_on_everything_gets_its_recipes_holdout_figures(built, tmp_path):
    """--holdout-run: a checkpoint without a validation split is measured by the same recipe trained with the time
    holdout, converted and scored the same way (the figures of that run's own bundle), and says so."""
    tmp, _, _ = built
    data = str(FIXTURES / "tweets.csv")
    cli("train", "--data", data, "--base", str(tmp / "base"), "--out", str(tmp_path / "all"), "--epochs", "1",
        "--val-fraction", "0", "--gap-fraction", "0", "--learning-rate", "1e-3")
    package = ["package", "--data", data, "--checkpoint", str(tmp_path / "all" / "best"), "--holdout-run",
               str(tmp / "run" / "best"), "--out", str(tmp_path / "bundle"), "--version", "1.1.0"]
    cli(*package)
    manifest = Bundle.load(tmp_path / "bundle").manifest()
    assert manifest["command"] == shlex.join(["python", "-m", "model_build", *package])  # main's argv, not the process's
    metrics = manifest["metrics"]
    own = Bundle.load(tmp / "bundles" / "dynamic-int8").manifest()["metrics"]
    for key in ("n", "accuracy", "macro_f1", "per_class", "confusion"):
        assert metrics["validation"][key] == own["validation"][key], key
    assert {k: v for k, v in metrics["relatedness"].items() if k != "model"} == own["relatedness"]
    assert {k: v for k, v in metrics["framework_validation"].items() if k != "model"} == own["framework_validation"]
    assert metrics["relatedness"]["model"] == metrics["validation"]["model"]
    assert str(tmp / "run" / "best") in metrics["validation"]["model"] and not list(tmp_path.glob(".holdout-run-*"))
    assert not {"bundle", "name", "version"} & set(metrics["validation"])  # the stand-in bundle's, not this one's
    assert metrics["relatedness"]["threshold"] == 0.5  # none given, none chosen
    cli(*package[:-4], "--related-threshold", "0.3", "--out", str(tmp_path / "new" / "at-0.3"))  # a folder not yet made
    manifest = Bundle.load(tmp_path / "new" / "at-0.3").manifest()
    assert manifest["related_threshold"] == manifest["metrics"]["relatedness"]["threshold"] == 0.3  # the run's too
    assert "give MAJOR.MINOR.PATCH" in refused(*package[:-1], "1.2.0-rc1")  # before minutes of conversion
    assert "this one has held-out tweets" in refused("package", "--data", data, "--checkpoint", str(tmp / "run" / "best"),
                                                     "--holdout-run", str(tmp / "run" / "best"), "--out",
                                                     str(tmp_path / "refused"))


def test_a_bundle_of_a_time_gap_run_is_measured_on_its_gap_tweets_too(tmp_path, tiny_base):
    """A bundle packaged from a run with a time gap carries its quantised model's figures on the gap's tweets (the
    edge runtime's own predictions) beside the float model's; one trained on everything gets both from its
    --holdout-run, marked as that run's."""
    from model_build.checkpoint import Checkpoint
    from model_build.evaluate import evaluate_bundle
    from tests.test_curve import write_replab

    data = str(tmp_path / "replab")
    write_replab(tmp_path / "replab")
    (tmp_path / "base").symlink_to(tiny_base)
    common = ["train", "--data", data, "--base", str(tmp_path / "base"), "--epochs", "1", "--learning-rate", "1e-3",
              "--batch-size", "8"]
    cli(*common, "--out", str(tmp_path / "run"))  # the default split: a validation 15% and a gap 15% before it
    bundle = tmp_path / "bundles" / "dynamic-int8"
    out = cli("package", "--data", data, "--checkpoint", str(tmp_path / "run" / "best"), "--out", str(bundle),
              "--version", "1.0.0")
    run = Checkpoint.load(tmp_path / "run" / "best")
    _, gap, val = run.data.partition(run.data.load()[0])
    metrics = Bundle.load(bundle).manifest()["metrics"]
    measured = evaluate_bundle(bundle, gap)
    for key in ("n", "accuracy", "macro_f1", "per_class", "confusion", "relatedness"):
        assert metrics["gap"][key] == json.loads(json.dumps(measured[key])), key
    assert metrics["gap"]["n"] == sum(e.label is not None for e in gap)
    assert metrics["framework_gap"] == run.summary["gap"] and "the time gap's tweets: n=" in out
    assert metrics["gap"]["confusion"] != metrics["validation"]["confusion"]  # two slices, each scored
    assert metrics["relatedness"] == metrics["validation"]["relatedness"] != metrics["gap"]["relatedness"]
    cli("evaluate", "--gap", "--data", data, "--bundle", str(bundle), "--json", str(tmp_path / "gap.json"))
    again = json.loads((tmp_path / "gap.json").read_text())
    for key in ("n", "accuracy", "macro_f1", "per_class", "confusion", "relatedness"):
        assert again[key] == metrics["gap"][key], key
    assert again["measured_on"] == {"data": data, "full_names": False, "part": "gap", "split": "training", "language": "EN"}
    assert "not apply" in refused("evaluate", "--gap", "--split", "test", "--data", data, "--bundle", str(bundle))
    killed = tmp_path / "bundles" / ".dynamic-int8.tmp-killed"  # what a package run killed mid-write leaves
    killed.mkdir()
    (killed / "manifest.json").write_text('{"half": ')
    cli("report", "--data", data, "--checkpoint", str(tmp_path / "run" / "best"), "--bundles",
        str(tmp_path / "bundles"), "--out", str(tmp_path / "report"))
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    for key in ("n", "accuracy", "macro_f1", "per_class", "confusion", "relatedness"):
        assert report["gap"]["TFLite dynamic-int8"][key] == metrics["gap"][key], key
    assert report["gap"]["TF-IDF + logistic regression"]["n"] == metrics["gap"]["n"]
    assert report["gap"]["PyTorch float32"] == run.summary["gap"]
    assert "## The time gap's tweets" in (tmp_path / "report" / "report.md").read_text()
    # Data that now splits otherwise (a tweet gone) is refused, not scored as the run's validation and gap:
    edited = tmp_path / "edited"
    shutil.copytree(data, edited)
    gold = edited / "training" / "goldstandard" / "goldstandard_polarity.dat"
    gold.write_text("".join(gold.read_text().splitlines(keepends=True)[:-1]))
    for command in (["package", "--checkpoint", str(tmp_path / "run" / "best"), "--out", str(tmp_path / "x")],
                    ["evaluate", "--holdout", "--bundle", str(bundle)],
                    ["report", "--checkpoint", str(tmp_path / "run" / "best"), "--bundles", str(tmp_path / "bundles"),
                     "--out", str(tmp_path / "x")]):
        assert "these tweets split otherwise than when the run trained" in refused(*command, "--data", str(edited))
    assert not (tmp_path / "x").exists()

    cli(*common, "--val-fraction", "0", "--gap-fraction", "0", "--out", str(tmp_path / "all"))
    cli("package", "--data", data, "--checkpoint", str(tmp_path / "all" / "best"), "--holdout-run",
        str(tmp_path / "run" / "best"), "--out", str(tmp_path / "refit"), "--version", "1.1.0")
    refit = Bundle.load(tmp_path / "refit").manifest()["metrics"]
    assert "no time gap of its own" in refused("evaluate", "--gap", "--data", data, "--bundle", str(tmp_path / "refit"))
    for key in ("n", "accuracy", "macro_f1", "per_class", "confusion"):
        assert refit["gap"][key] == metrics["gap"][key], key
    assert str(tmp_path / "run" / "best") in refit["gap"]["model"] == refit["gap"]["relatedness"]["model"]
    (tmp_path / "others").mkdir()
    shutil.copytree(tmp_path / "refit", tmp_path / "others" / "refit")  # a bundle of another checkpoint
    assert "was not packaged from checkpoint" in refused("report", "--data", data, "--checkpoint",
                                                         str(tmp_path / "run" / "best"), "--bundles",
                                                         str(tmp_path / "others"), "--out", str(tmp_path / "x"))
    assert refit["relatedness"] == refit["validation"]["relatedness"]
    for key in ("framework_validation", "framework_gap"):  # the other run's float figures, saying whose
        assert {k: v for k, v in refit[key].items() if k != "model"} == metrics[key]
        assert str(tmp_path / "run" / "best") in refit[key]["model"]

    cli(*common, "--val-fraction", "0", "--out", str(tmp_path / "latest"))  # a gap, then the latest tweets trained on
    out = cli("package", "--data", data, "--checkpoint", str(tmp_path / "latest" / "best"), "--out",
              str(tmp_path / "latest-bundle"))
    latest = Bundle.load(tmp_path / "latest-bundle").manifest()["metrics"]
    assert latest["validation"] == {} and latest["gap"]["n"] > 0 and "trained on everything" not in out
    assert "this one has held-out tweets" in refused("package", "--data", data, "--checkpoint",
                                                     str(tmp_path / "latest" / "best"), "--holdout-run",
                                                     str(tmp_path / "run" / "best"), "--out", str(tmp_path / "refused"))
