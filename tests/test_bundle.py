"""Bundle.load: a valid bundle loads; a corrupt, truncated or mismatched one is refused with one line."""

import json

import pytest

from app.bundle import Bundle
from app.errors import AppError
from tests.conftest import TINY_BUNDLE, app_command, with_manifest


def test_loads_the_tiny_bundle():
    bundle = Bundle.load(TINY_BUNDLE)
    assert bundle.labels == ("positive", "neutral", "negative")
    assert bundle.pair_input and bundle.quantization == "dynamic-int8"
    assert bundle.model_bytes == bundle.model_path.stat().st_size
    with pytest.raises(AttributeError):
        bundle.name = "other"


def test_labels_written_in_upper_case_are_shown_as_answers_name_them(tmp_path):
    bundle = Bundle.load(with_manifest(TINY_BUNDLE, tmp_path / "bundle", labels=["POSITIVE", "Neutral", "negative"]))
    assert bundle.labels == ("positive", "neutral", "negative") and bundle.summary()["labels"] == list(bundle.labels)


def _refused(path, fragment):
    with pytest.raises(AppError) as info:
        Bundle.load(path)
    message = str(info.value)
    assert fragment in message and "\n" not in message
    return message


def test_flipped_byte_fails_checksum(tiny_bundle_copy):
    model = tiny_bundle_copy / "model.tflite"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    _refused(tiny_bundle_copy, "fails its sha256 check")


def test_truncated_model_is_refused(tiny_bundle_copy):
    model = tiny_bundle_copy / "model.tflite"
    model.write_bytes(model.read_bytes()[:1000])
    _refused(tiny_bundle_copy, "truncated")


def test_missing_file_and_missing_manifest(tiny_bundle_copy):
    (tiny_bundle_copy / "vocab.txt").unlink()
    _refused(tiny_bundle_copy, "vocab.txt is missing")
    (tiny_bundle_copy / "manifest.json").unlink()
    _refused(tiny_bundle_copy, "no manifest.json")
    _refused(tiny_bundle_copy / "nowhere", "not a directory")


@pytest.mark.parametrize("change, fragment", [
    (lambda m: m.update(schema_version=99), "schema_version 99 unsupported"),
    (lambda m: m.pop("labels"), "'labels' is a required property"),
    (lambda m: m.update(labels=["a", "a"]), "manifest 'labels': ['a', 'a'] has non-unique elements"),
    (lambda m: m.update(labels=["Good", "good", "bad"]), "differ only in case"),
    (lambda m: m["preprocessing"].update(lowercase="no"), "manifest 'preprocessing.lowercase': 'no' is not of type"),
    (lambda m: m["preprocessing"].update(stemming=True), "'stemming' was unexpected"),
    (lambda m: m["preprocessing"].update(mention_token=1), "manifest 'preprocessing.mention_token': 1 is not of type"),
    (lambda m: m.update(version="latest"), "manifest 'version'"),
    (lambda m: m.update(input_format="image"), "input_format"),
    (lambda m: m.update(quantization="int4"), "quantization"),
    (lambda m: m["preprocessing"].update(max_length=4), "max_length"),
    (lambda m: m["files"]["model.tflite"].update(sha256="0" * 64), "sha256"),
    (lambda m: m["files"].update({"../etc/passwd": {"sha256": "0" * 64, "bytes": 1}}), "must not contain a path"),
    (lambda m: m.update(related_threshold=1), "manifest 'related_threshold': 1 is greater than or equal to"),
    (lambda m: m.update(related_threshold="high"), "manifest 'related_threshold': 'high' is not of type 'number'"),
    (lambda m: m.update(related_threshold=0.7), "'related_threshold' is set, but 'outputs' has no 'related'"),
    (lambda m: m.update(label_offsets={"angry": -0.4}), "'label_offsets' names 'angry', which is not one of"),
    (lambda m: m.update(label_offsets={"negative": -0.4, "Negative": 1}), "names a label twice"),
    (lambda m: m.update(label_offsets={"negative": "-0.4"}), "manifest 'label_offsets.negative': '-0.4' is not of type"),
    (lambda m: m.update(label_offsets={"negative": float("nan")}), "manifest.json is not valid JSON (NaN is not a JSON "
                                                                   "number)"),
    (lambda m: m.update(related_threshold=float("inf")), "not valid JSON (Infinity is not a JSON number)"),
    # finite as a float64, over float32's range: the scores were NaN, which is not JSON
    (lambda m: m.update(label_offsets={"negative": 1e39}), "'label_offsets.negative': 1e+39 is greater than the maximum"),
    # 56.0 passes JSON Schema's "integer": the tokenizer then failed with a traceback
    (lambda m: m["preprocessing"].update(max_length=56.0), "'preprocessing.max_length': 56.0 is not of type 'integer'"),
    (lambda m: m["preprocessing"].update(max_chars=2000.0), "'preprocessing.max_chars': 2000.0 is not of type 'integer'"),
    (lambda m: m["files"]["model.tflite"].update(bytes=True), "True is not of type 'integer'"),
    (lambda m: m.update(entity_aliases={"Acme Inc": ""}), "manifest 'entity_aliases.Acme Inc': '' should be non-empty"),
    (lambda m: m.update(entity_aliases={"Acme Inc": "Acme"}, input_format="text"), "'input_format' 'text' reads no entity"),
    (lambda m: m.update(entity_aliases={"\u200b": "Acme"}), "names '\\u200b', which preprocessing leaves empty"),
    (lambda m: m.update(entity_aliases={"Acme Inc": "Acme", "ACME  inc": "Acme"}), "'Acme Inc' and 'ACME  inc', which "
                                                                                  "read the same"),
    (lambda m: m.update(entity_aliases={"Acme Inc": "Acme", "acme": "Acme Co"}), "maps a name to 'Acme', which is an alias"),
    (lambda m: m.update(entity_aliases={"ACME ": "acme"}), "maps 'ACME ' to 'acme', which reads the same"),
    (lambda m: m.update(entity_aliases={}), "manifest 'entity_aliases': {} should be non-empty"),
])
def test_manifest_mismatch_is_refused(tiny_bundle_copy, change, fragment):
    path = tiny_bundle_copy / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))
    _refused(tiny_bundle_copy, fragment)


def test_manifest_not_json(tiny_bundle_copy):
    (tiny_bundle_copy / "manifest.json").write_bytes(b"\xff{not json")
    _refused(tiny_bundle_copy, "not valid JSON")


def test_a_number_beyond_a_floats_range_is_refused(tiny_bundle_copy):
    """``1e400`` reads as infinity, which /v1/model would then serve as ``Infinity``: not JSON."""
    path = tiny_bundle_copy / "manifest.json"
    path.write_text(path.read_text().replace('"schema_version": 1,', '"schema_version": 1, "metrics": {"x": 1e400},', 1))
    _refused(tiny_bundle_copy, "manifest.json is not valid JSON (1e400 is beyond a float's range)")


def test_labels_not_matching_model_outputs_are_refused(tiny_bundle_copy):
    from app.classifier import Classifier

    path = tiny_bundle_copy / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["labels"] = ["positive", "negative"]
    path.write_text(json.dumps(manifest))
    with pytest.raises(AppError, match=r"model outputs have widths \[3\], .* need \[2\]"):
        Classifier(Bundle.load(tiny_bundle_copy))


@pytest.mark.parametrize("outputs, reason", [
    (["polarity", "related"], r"widths \[3\], .* need \[1, 3\]"),  # a relatedness head the model lacks
    (["related"], "manifest 'outputs.0': 'polarity' was expected"),
    (["polarity", "polarity"], "manifest 'outputs': .* non-unique"),
    ("polarity", "manifest 'outputs': 'polarity' is not of type 'array'"),
])
def test_outputs_not_matching_the_model_are_refused(tiny_bundle_copy, outputs, reason):
    from app.classifier import Classifier

    path = tiny_bundle_copy / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["outputs"] = outputs
    path.write_text(json.dumps(manifest))
    with pytest.raises(AppError, match=reason):
        Classifier(Bundle.load(tiny_bundle_copy))


def test_a_vocabulary_without_the_special_tokens_is_refused_by_verify(tiny_bundle_copy):
    """`python -m app verify` on a bundle whose (checksummed) vocabulary lacks [CLS]: one line, exit 2."""
    import hashlib

    vocab = tiny_bundle_copy / "vocab.txt"
    vocab.write_text("".join(t + "\n" for t in vocab.read_text().splitlines() if t != "[CLS]"))
    path = tiny_bundle_copy / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["files"]["vocab.txt"] = {"sha256": hashlib.sha256(vocab.read_bytes()).hexdigest(),
                                      "bytes": vocab.stat().st_size}
    path.write_text(json.dumps(manifest))
    result = app_command("verify", str(tiny_bundle_copy))
    assert result.returncode == 2 and result.stderr.splitlines() == [
        f"error: bundle {tiny_bundle_copy}: vocabulary {vocab} lacks special tokens ['[CLS]']"], result.stderr
