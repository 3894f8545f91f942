"""Conversion of a fine-tuned checkpoint to TFLite FlatBuffers with a dynamic [batch, length] input."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from enum import Enum
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from app.classifier import INPUT_NAMES

from .checkpoint import Checkpoint
from .errors import readable
from .settings import Pooling


class Variant(str, Enum):
    """A bundle's quantisation: none, float16 weights, int8 weights (dynamic range), or int8 throughout."""

    FLOAT32 = "float32"
    FLOAT16 = "float16"
    DYNAMIC_INT8 = "dynamic-int8"
    FULL_INT8 = "full-int8"


VARIANTS = tuple(v.value for v in Variant)


def _quiet_tensorflow():
    """TensorFlow, its C++ start-up lines (oneDNN, no CUDA driver, cuInit failed on a machine without a GPU: written
    before its log level applies, or as errors) kept off stderr unless the import or the devices' listing fails."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    sys.stderr.flush()
    with tempfile.TemporaryFile() as held:
        saved = os.dup(2)
        os.dup2(held.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()  # CUDA's start (cuInit) here, not at the first conversion
        except BaseException:
            os.dup2(saved, 2)
            held.seek(0)
            os.write(2, held.read())
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    return tf


def export_saved_model(checkpoint: Checkpoint, out_dir: Path) -> Path:
    """Load a checkpoint's PyTorch weights into the TF class and save a dynamic-shape SavedModel.

    Outputs: ``logits`` ``[batch, labels]`` and, with a relatedness head, ``related`` ``[batch, 1]``, the
    probability that the tweet is about the entity, from the same encoder pass (each head pooled as in training).
    """
    tf = _quiet_tensorflow()
    from safetensors.numpy import load_file
    from transformers import TFAutoModelForSequenceClassification

    from .model import RELATED_HEAD_FILE

    with readable(f"checkpoint {checkpoint.path}"):
        model = TFAutoModelForSequenceClassification.from_pretrained(str(checkpoint.path), from_pt=True)
        head = load_file(str(checkpoint.path / RELATED_HEAD_FILE)) if checkpoint.related else None
    spec = [tf.TensorSpec([None, None], tf.int32, name=name) for name in INPUT_NAMES]

    @tf.function(input_signature=spec)
    def serve(input_ids, attention_mask, token_type_ids):
        encoder = getattr(model, model.base_model_prefix)
        out = encoder(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids, training=False)
        pooling, labels = Pooling.of(model.config), out.pooler_output
        if pooling.labels_read_mean:
            mask = tf.expand_dims(tf.cast(attention_mask, out.last_hidden_state.dtype), -1)  # no new-axis slice: TFLite lacks it
            labels = tf.reduce_sum(out.last_hidden_state * mask, 1) / tf.maximum(tf.reduce_sum(mask, 1), 1.0)
        outputs = {"logits": model.classifier(labels)}
        if head is not None:
            read = labels if pooling.heads_read_alike else out.pooler_output
            outputs["related"] = tf.sigmoid(tf.matmul(read, head["weight"], transpose_b=True) + head["bias"])
        return outputs

    module = tf.Module()
    # The weights alone, not the Keras model: saving a Keras model traces every layer's call for Keras' own loading,
    # which serving never uses (twice the export's time; the FlatBuffers come out byte for byte the same).
    module.weights = list(model.weights)
    module.serve = serve
    tf.saved_model.save(module, str(out_dir), signatures={"serving_default": serve})
    return out_dir


def convert_variant(saved_model: Path, variant: Variant,
                    representative: Callable[[], Iterable[dict]]) -> tuple[bytes, dict]:
    """One TFLite FlatBuffer and a note of how it was made (``representative``: full-int8's calibration inputs)."""
    tf = _quiet_tensorflow()
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model), signature_keys=["serving_default"])
    note: dict = {"variant": variant.value, "converter": f"tensorflow {tf.__version__}"}
    if variant is not Variant.FLOAT32:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if variant is Variant.FLOAT16:
        converter.target_spec.supported_types = [tf.float16]
    elif variant is Variant.FULL_INT8:
        converter.representative_dataset = lambda: ({n: x[n] for n in INPUT_NAMES} for x in representative())
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        note["ops"] = "TFLITE_BUILTINS_INT8"
    started = time.time()
    flatbuffer = converter.convert()
    note["seconds"] = round(time.time() - started, 1)
    return flatbuffer, note


def convert(checkpoint: Checkpoint, variants: Sequence[str],
            representative: Callable[[], Iterable[dict]]) -> dict[str, tuple[bytes, dict]]:
    """Convert a checkpoint to each requested variant."""
    with tempfile.TemporaryDirectory(prefix="saved_model-") as tmp:
        started = time.time()
        saved = export_saved_model(checkpoint, Path(tmp) / "saved_model")
        print(f"convert: SavedModel exported in {time.time() - started:.0f} s")
        results = {}
        for variant in variants:
            results[variant] = convert_variant(saved, Variant(variant), representative)
            print(f"convert: {variant}: {len(results[variant][0]):,} bytes in {results[variant][1]['seconds']} s")
        return results


def representative_inputs(encodings, encoder, count: int = 100, seed: int = 13) -> Callable[[], Iterable[dict]]:
    """Calibration inputs for full-integer quantisation: real tweets at their own lengths, one per batch."""
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(encodings), size=min(count, len(encodings)), replace=False)

    def generate():
        for i in picks:
            yield encoder.pad([encodings[i]], len(encodings[i].ids))

    return generate
