"""The systems a user would run instead of our bundle, on the same fine-tuned weights and the same token ids:
Hugging Face transformers on PyTorch float32, and ONNX Runtime with dynamic int8 quantisation."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np

from app.bundle import Bundle
from app.classifier import Classifier
from app.text import TweetEncoder

from .data import ROOT

ONNX_DIR = ROOT / "build" / "bench" / "onnx"


class Ours:
    """The bundle through the service's classifier (tokenisation, length buckets, interpreter)."""

    name = "TFLite dynamic-int8 (ours)"

    def __init__(self, bundle: Bundle, threads: int):
        self.classifier = Classifier(bundle, threads=threads)
        self.labels = list(bundle.labels)
        self.runtime = f"{self.classifier.runtime.name} {self.classifier.runtime.version}"

    def predict(self, text: str, entity: str) -> int:
        (p,) = self.classifier.classify([text], [entity])
        return self.labels.index(p.label)


class _Peer:
    """A peer fed exactly the ids our encoder makes for the tweet, at its own length (batch of one)."""

    def __init__(self, bundle: Bundle, checkpoint: Path):
        self.encoder = TweetEncoder(bundle.vocab_path, bundle.text_settings, bundle.pair_input)
        id2label = json.loads((Path(checkpoint) / "config.json").read_text())["id2label"]
        names = [id2label[str(i)] for i in range(len(id2label))]
        self.to_bundle = [list(bundle.labels).index(n) for n in names]  # checkpoint index -> bundle index

    def inputs(self, text: str, entity: str) -> dict[str, np.ndarray]:
        encodings = self.encoder.encode([text], [entity])
        return self.encoder.pad(encodings, len(encodings[0].ids))

    def predict(self, text: str, entity: str) -> int:
        return self.to_bundle[int(np.argmax(self.logits(self.inputs(text, entity))))]


class PyTorchFloat32(_Peer):
    name = "transformers + PyTorch float32"

    def __init__(self, bundle: Bundle, checkpoint: Path, threads: int):
        import torch
        import transformers
        from transformers import AutoModelForSequenceClassification

        super().__init__(bundle, checkpoint)
        torch.set_num_threads(threads)
        self.torch = torch
        self.model = AutoModelForSequenceClassification.from_pretrained(str(checkpoint)).eval()
        self.runtime = f"torch {torch.__version__}, transformers {transformers.__version__}"

    def logits(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        with self.torch.inference_mode():
            return self.model(**{k: self.torch.from_numpy(v).long() for k, v in inputs.items()}).logits.numpy()


def export_onnx_int8(checkpoint: Path, out_dir: Path = ONNX_DIR) -> Path:
    """The checkpoint exported to ONNX (dynamic batch and length), then dynamically quantised to int8."""
    quantised = out_dir / "model.int8.onnx"
    if quantised.exists():
        return quantised
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoModelForSequenceClassification

    out_dir.mkdir(parents=True, exist_ok=True)
    model = AutoModelForSequenceClassification.from_pretrained(str(checkpoint)).eval()
    names = ["input_ids", "attention_mask", "token_type_ids"]
    example = tuple(torch.ones((1, 16), dtype=torch.long) for _ in names)
    axes = {n: {0: "batch", 1: "length"} for n in names} | {"logits": {0: "batch"}}
    fp32 = out_dir / "model.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, example, str(fp32), input_names=names, output_names=["logits"],
                          dynamic_axes=axes, opset_version=17, dynamo=False)
    tmp = out_dir / ".model.int8.onnx.tmp"
    quantize_dynamic(str(fp32), str(tmp), weight_type=QuantType.QInt8)
    tmp.replace(quantised)
    return quantised


class OnnxRuntimeInt8(_Peer):
    name = "ONNX Runtime dynamic int8"

    def __init__(self, bundle: Bundle, checkpoint: Path, threads: int):
        import onnxruntime as ort

        super().__init__(bundle, checkpoint)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(export_onnx_int8(Path(checkpoint))), options,
                                            providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.runtime = f"onnxruntime {ort.__version__}"

    def logits(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run(None, {n: inputs[n].astype(np.int64) for n in self.input_names})[0]
