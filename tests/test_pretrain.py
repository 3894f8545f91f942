"""Domain-adaptive pretraining (``pretrain``) on a tiny random BERT: the texts it takes (RepLab less the validation
tweets, text files), that masked-token loss falls on held-out texts, that its output is a base ``train`` takes,
resuming, and one-line refusals."""

from __future__ import annotations

import json
import time
from collections import Counter

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

from model_build.checkpoint import DataSpec
from model_build.pretrain import PRETRAIN_SUMMARY_FILE, PretrainConfig, _head_warmup, file_texts, pretrain, replab_examples
from model_build.splits import Holdout, SplitSpec
from tests.conftest import cli, refused, stopped_after_save
from tests.test_curve import SEEN, _q, write_replab

SPANISH = "no me gusta nada este banco"


@pytest.fixture(scope="module")
def tree(tmp_path_factory, tiny_base):
    tmp = tmp_path_factory.mktemp("pretrain")
    write_replab(tmp / "replab")
    training = tmp / "replab" / "training"  # and one Spanish tweet, unrelated
    for path, row in ((training / "tweet_info" / f"{SEEN}.dat", _q(999, "a", SEEN, "u", "ES", 1, "", "", "", -1)),
                      (training / "texts" / f"{SEEN}.tsv", _q(999, "a", SEEN, SPANISH)),
                      (training / "goldstandard" / "goldstandard_filtering.dat", _q(SEEN, 999, "UNRELATED"))):
        path.write_text(path.read_text() + row)
    (tmp / "base").symlink_to(tiny_base)
    (tmp / "more").mkdir()
    (tmp / "more" / "val_text.txt").write_text("the service was great today\n\nthe bank lost my card again\n")
    (tmp / "more" / "mapping.txt").write_text("0 not a text file\n")
    return tmp


def test_replab_texts_leave_out_the_validation_tweets_and_the_gap_that_train_holds_out(tree):
    data = DataSpec(str(tree / "replab"), unrelated=True, holdout=SplitSpec(Holdout.TIME, 0.25, 0.25, 13))
    examples, _ = data.load()
    train, val = data.splits()
    texts = [e.text for e in replab_examples(data)]  # the training part's English tweets and the Spanish one
    assert Counter(texts) == Counter([e.text for e in train] + [SPANISH]) and val
    assert len(texts) < len(examples) - len(val)  # the gap is out too
    assert len(replab_examples(data.with_holdout(SplitSpec(Holdout.TIME, 0.0, 0.0, 13)))) == len(examples) + 1


def test_a_folder_gives_its_text_files_lines_only(tree):
    assert file_texts(tree / "more") == ["the service was great today", "the bank lost my card again"]


def test_pretraining_lowers_held_out_masked_loss_and_writes_a_base_that_train_takes(tree):
    args = ["pretrain", "--base", str(tree / "base"), "--data", str(tree / "replab"), "--texts", str(tree / "more"),
            "--max-steps", "40", "--batch-size", "8", "--learning-rate", "3e-3", "--out", str(tree / "dapt")]
    # held out: 1000 texts by default, more than the fixture has
    assert "more than the 1000 held out" in refused(*args)
    assert not (tree / "dapt").exists()
    args[-2:-2] = ["--held-out", "20"]
    out = cli(*args)
    summary = json.loads((tree / "dapt" / "model" / PRETRAIN_SUMMARY_FILE).read_text())
    before, after = summary["held_out"]["before"], summary["held_out"]["after"]
    assert after["masked_loss"] < before["masked_loss"] and after["tokens"] == before["tokens"] > 0
    assert summary["texts"]["files"] == {str(tree / "more"): 2} and "held-out masked tokens after" in out
    assert summary["mlm_head"] == "new"  # init-random saves a classifier: no masked-LM head to continue
    base = load_file(str(tree / "base" / "model.safetensors"))
    mine = load_file(str(tree / "dapt" / "model" / "model.safetensors"))
    assert np.array_equal(mine["pooler.dense.weight"], base["bert.pooler.dense.weight"])  # kept, not trained
    assert not np.allclose(mine["encoder.layer.0.attention.self.query.weight"],
                           base["bert.encoder.layer.0.attention.self.query.weight"])  # the encoder was trained
    train = ["train", "--data", str(tree / "replab"), "--base", str(tree / "dapt" / "model"), "--epochs", "1",
             "--learning-rate", "1e-3", "--batch-size", "8"]
    cli(*train, "--out", str(tree / "run"))
    assert (tree / "run" / "best" / "model.safetensors").is_file()
    # the entities holdout validates on tweets this base was pretrained on
    assert "was pretrained on" in refused(*train, "--holdout", "entities", "--out", str(tree / "leak"))
    assert not (tree / "leak").exists()
    # and so is a wider gap, validation untouched: the gap's tweets are held out too
    assert "of the held-out tweets" in refused(*train, "--gap-fraction", "0.3", "--out", str(tree / "leak"))
    assert "nothing to resume" in cli(*args)
    assert "started with other settings (max_steps)" in refused(*args[:-2], "--max-steps", "41", *args[-2:])
    # one kind of run's folder given to the other command: said so, not as other settings
    assert refused(*args[:-1], str(tree / "run")).endswith(f"{tree / 'run'} holds a train run, not a pretrain run: "
                                                            "give a new --out")
    assert refused(*train, "--out", str(tree / "dapt")).endswith("holds a pretrain run, not a train run: give a new --out")


def test_head_warmup_updates_the_new_head_alone_then_the_encoder_too(tree):
    from transformers import AutoModelForMaskedLM, TrainerState

    torch.manual_seed(0)
    model = AutoModelForMaskedLM.from_pretrained(tree / "base")
    warmup, state = _head_warmup(model.bert, 1), TrainerState()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.01)  # as Trainer's: every parameter
    ids = torch.randint(5, model.config.vocab_size, (4, 12))
    encoder, head = "bert.encoder.layer.0.attention.self.query.weight", "cls.predictions.transform.dense.weight"
    weights = [{k: v.clone() for k, v in model.state_dict().items()}]
    for step in range(2):
        state.global_step = step
        warmup.on_step_begin(None, state, None)
        model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        weights.append({k: v.clone() for k, v in model.state_dict().items()})
    moved = [{k for k in after if not torch.equal(before[k], after[k])} for before, after in zip(weights, weights[1:])]
    assert head in moved[0] and not any(k.startswith("bert.") for k in moved[0])  # the tied decoder is frozen too
    assert {head, encoder, "bert.embeddings.word_embeddings.weight"} <= moved[1]


def test_a_pretraining_with_head_warmup_leaves_the_encoder_as_it_was_until_the_warmup_ends(tree, tmp_path):
    """Through the real Trainer, stopped right after its checkpoint at the end of the 3 head-only steps (as by Ctrl-C):
    that checkpoint holds the base's encoder; resumed, the run trains the encoder in its last step. The summary's
    training time counts the time up to that checkpoint too."""

    config = PretrainConfig(str(tree / "base"), tmp_path / "p", max_steps=4, head_warmup=3, batch_size=4,
                            learning_rate=3e-3, held_out=4, checkpoint_every=3)
    texts, sources = file_texts(tree / "more") * 20, {"replab": None, "files": {}}

    with stopped_after_save(3):
        pretrain(config, texts, sources, "test")
    base = load_file(str(tree / "base" / "model.safetensors"))
    warm = load_file(str(tmp_path / "p" / "trainer" / "checkpoint-3" / "model.safetensors"))
    state_file = tmp_path / "p" / "trainer" / "checkpoint-3" / "trainer_state.json"
    state = json.loads(state_file.read_text())
    state["stateful_callbacks"]["Elapsed"]["args"]["seconds"] = 1000.0  # as if the first sitting took that long
    state_file.write_text(json.dumps(state))
    started = time.monotonic()
    pretrain(config, texts, sources, "test")  # resumed
    sitting = time.monotonic() - started
    done = load_file(str(tmp_path / "p" / "model" / "model.safetensors"))
    seconds = json.loads((tmp_path / "p" / "model" / PRETRAIN_SUMMARY_FILE).read_text())["seconds"]
    assert 1000 < seconds <= 1000 + sitting, (seconds, sitting)  # both sittings, not only the last
    for key in ("encoder.layer.0.attention.self.query.weight", "embeddings.word_embeddings.weight"):
        assert np.array_equal(warm[f"bert.{key}"], base[f"bert.{key}"])
        assert not np.allclose(done[key], base[f"bert.{key}"])


@pytest.mark.parametrize("extra, message", [
    ([], "give tweet texts"),
    (["--texts", "/nonexistent/tweets.txt"], "no text file"),
    (["--texts", "TEXTS", "--mask-fraction", "1"], "mask fraction in (0, 1)"),
    (["--texts", "TEXTS", "--held-out", "2", "--base", "/nonexistent/base"],
     "not a readable base model"),
    (["--texts", "TEXTS", "--held-out", "2", "--base", "OTHER"], "not distilbert"),
    (["--texts", "TEXTS", "--held-out", "2", "--base", "NOTOK"], "a base needs its tokenizer files"),
    # RepLab's split options without RepLab: they were ignored
    (["--texts", "TEXTS", "--split", "test"], "--split chooses among RepLab's tweets: give --data"),
    (["--texts", "TEXTS", "--val-fraction", "0", "--gap-fraction", "0"],
     "--val-fraction and --gap-fraction choose among RepLab's tweets: give --data"),
    (["--texts", "TEXTS", "--max-length", "600"], "a length of 8 to 512 tokens"),
    (["--texts", "TEXTS", "--max-steps", "10", "--head-warmup", "10"], "fewer than the steps"),
    (["--texts", "TEXTS", "--head-warmup", "0"], "a head warm-up of at least 1 step"),
    pytest.param(["--texts", "TEXTS", "--held-out", "2", "--device", "cuda"],
                 "PyTorch sees no CUDA GPU",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is here: cuda is not refused")),
])
def test_pretraining_refuses_in_one_line(tree, tmp_path, tokenizerless, extra, message):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text('{"model_type": "distilbert"}')
    (tmp_path / "texts.txt").write_text("".join(f"tweet number {i}\n" for i in range(10)))
    named = {"OTHER": str(tmp_path / "other"), "TEXTS": str(tmp_path / "texts.txt"), "NOTOK": str(tokenizerless)}
    extra = [named.get(a, a) for a in extra]
    assert message in refused("pretrain", "--base", str(tree / "base"), *extra, "--out", str(tmp_path / "p"))
    assert not (tmp_path / "p").exists()


def test_a_base_pretrained_on_a_text_file_holding_validation_tweets_is_refused(tree, tmp_path):
    """Checked by text, the file read again; where it is gone, a note says so and training goes on."""
    data = DataSpec(str(tree / "replab"), unrelated=True, holdout=SplitSpec(Holdout.TIME, 0.15, 0.15, 13))
    _, _, val = data.parts()
    texts = tmp_path / "texts.txt"
    texts.write_text("".join(f"filler tweet {i}\n" for i in range(20)) + val[0].text + "\n")
    cli("pretrain", "--base", str(tree / "base"), "--texts", str(texts), "--held-out", "2", "--max-steps", "2",
        "--batch-size", "8", "--out", str(tmp_path / "dapt"))
    train = ["train", "--data", str(tree / "replab"), "--base", str(tmp_path / "dapt" / "model"), "--epochs", "1",
             "--batch-size", "8"]
    assert "was pretrained on 1 of the held-out tweets" in refused(*train, "--out", str(tmp_path / "leak"))
    assert not (tmp_path / "leak").exists()
    texts.unlink()
    assert f"note: base {tmp_path / 'dapt' / 'model'} was pretrained on {texts}, which is gone" in cli(
        *train, "--out", str(tmp_path / "run"))


def test_a_base_pretrained_on_replab_data_that_changed_since_is_refused(tree, tmp_path):
    """The RepLab tweets a base was pretrained on are checked against the held-out ones as they were (their digest
    in its summary): data that holds other tweets now cannot show which it read, so training on it is refused."""
    import shutil

    shutil.copytree(tree / "replab", tmp_path / "replab")
    cli("pretrain", "--base", str(tree / "base"), "--data", str(tmp_path / "replab"), "--held-out", "2",
        "--max-steps", "2", "--batch-size", "8", "--out", str(tmp_path / "dapt"))
    train = ["train", "--data", str(tmp_path / "replab"), "--base", str(tmp_path / "dapt" / "model"), "--epochs", "1",
             "--batch-size", "8"]
    training = tmp_path / "replab" / "training"  # one more Spanish tweet, unrelated: read by pretraining only
    for path, row in ((training / "tweet_info" / f"{SEEN}.dat", _q(998, "a", SEEN, "u", "ES", 1, "", "", "", -1)),
                      (training / "texts" / f"{SEEN}.tsv", _q(998, "a", SEEN, "otro tweet en castellano")),
                      (training / "goldstandard" / "goldstandard_filtering.dat", _q(SEEN, 998, "UNRELATED"))):
        path.write_text(path.read_text() + row)
    line = refused(*train, "--out", str(tmp_path / "run"))
    assert line == (f"error: base {tmp_path / 'dapt' / 'model'}: {tmp_path / 'replab'} holds other tweets than when it "
                    "was pretrained on them (changed since?), so it cannot be checked against the held-out tweets: "
                    "give that data as it was, or pretrain again"), line
    assert not (tmp_path / "run").exists()


def test_a_table_given_as_texts_is_refused(tmp_path):
    """Its label and entity columns would be pretrained on as tweets."""
    (tmp_path / "tweets.csv").write_text("text,label\ngreat,positive\n")
    assert "tweets.csv: --texts takes plain text, one tweet per line" in refused(
        "pretrain", "--texts", str(tmp_path / "tweets.csv"), "--out", str(tmp_path / "dapt"))
    assert not (tmp_path / "dapt").exists()
