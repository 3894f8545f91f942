"""The systems a user would run instead of our bundle, on the same weights (one checkpoint, converted for each
runtime) and the same token ids: Hugging Face transformers on PyTorch float32, and ONNX Runtime with dynamic int8
quantisation."""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import numpy as np

from app.bundle import Bundle
from app.classifier import Classifier
from model_build.checkpoint import Checkpoint

from .data import ROOT

ONNX_DIR = ROOT / "build" / "bench" / "onnx"


class Ours:
    """The bundle through the service's classifier (tokenisation, length buckets, interpreter)."""

    def __init__(self, bundle: Bundle, threads: int):
        self.name = f"TFLite {bundle.quantization} (ours)"
        self.classifier = Classifier(bundle, threads=threads)
        self.labels = list(bundle.labels)
        self.runtime = f"{self.classifier.runtime.name} {self.classifier.runtime.version}"

    def predict(self, text: str, entity: str) -> int:
        (p,) = self.classifier.classify([text], [entity])
        return self.labels.index(p.label)


class _Peer:
    """A peer fed exactly the ids our encoder makes for the tweet, at its own length (batch of one), its label taken
    with the bundle's label offsets."""

    def __init__(self, bundle: Bundle, checkpoint: Checkpoint):
        self.encoder = bundle.encoder()
        self.bundle = bundle
        self.from_checkpoint = [list(checkpoint.labels).index(n) for n in bundle.labels]  # bundle's label order

    def inputs(self, text: str, entity: str) -> dict[str, np.ndarray]:
        encodings = self.encoder.encode([text], [entity])
        return self.encoder.pad(encodings, len(encodings[0].ids))

    def predict(self, text: str, entity: str) -> int:
        logits = self.logits(self.inputs(text, entity))[:, self.from_checkpoint]
        return int(np.argmax(self.bundle.adjusted(logits)))


class PyTorchFloat32(_Peer):
    name = "transformers + PyTorch float32"

    def __init__(self, bundle: Bundle, checkpoint: Checkpoint, threads: int):
        import torch
        import transformers

        super().__init__(bundle, checkpoint)
        torch.set_num_threads(threads)
        self.torch = torch
        self.model = checkpoint.model()  # both heads, as served: one encoder pass
        self.runtime = f"torch {torch.__version__}, transformers {transformers.__version__}"

    def logits(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        with self.torch.inference_mode():
            polarity, _ = self.model(**{k: self.torch.from_numpy(v).long() for k, v in inputs.items()})
            return polarity.numpy()


def export_onnx_int8(checkpoint: Checkpoint, out_root: Path = ONNX_DIR) -> Path:
    """The checkpoint (both heads) exported to ONNX (dynamic batch and length), then dynamically quantised to
    int8; cached per checkpoint."""
    key = hashlib.sha256(f"{checkpoint.path.resolve()}\n{checkpoint.summary_json}".encode()).hexdigest()[:16]
    out_dir = out_root / key
    quantised = out_dir / "model.int8.onnx"
    if quantised.exists():
        return quantised
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out_dir.mkdir(parents=True, exist_ok=True)
    model = checkpoint.model()
    names = ["input_ids", "attention_mask", "token_type_ids"]
    outputs = ["logits", "related"] if checkpoint.related else ["logits"]
    example = tuple(torch.ones((1, 16), dtype=torch.long) for _ in names)
    axes = {n: {0: "batch", 1: "length"} for n in names} | {n: {0: "batch"} for n in outputs}

    class Exported(torch.nn.Module):
        """The model's outputs as ONNX can name them (no None for a missing head)."""

        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, *inputs):
            polarity, related = self.model(*inputs)
            return (polarity, related) if related is not None else polarity

    fp32 = out_dir / "model.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Exported().eval(), example, str(fp32), input_names=names, output_names=outputs,
                          dynamic_axes=axes, opset_version=17, dynamo=False)
    tmp = out_dir / ".model.int8.onnx.tmp"
    quantize_dynamic(str(fp32), str(tmp), weight_type=QuantType.QInt8)
    tmp.replace(quantised)
    return quantised


class OnnxRuntimeInt8(_Peer):
    name = "ONNX Runtime dynamic int8"

    def __init__(self, bundle: Bundle, checkpoint: Checkpoint, threads: int):
        import onnxruntime as ort

        super().__init__(bundle, checkpoint)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(export_onnx_int8(checkpoint)), options,
                                            providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.runtime = f"onnxruntime {ort.__version__}"

    def logits(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run(None, {n: inputs[n].astype(np.int64) for n in self.input_names})[0]
