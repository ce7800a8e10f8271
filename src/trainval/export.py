"""``trainval export``: a trained model as one ONNX file or one safetensors file, for other tools.

The ONNX graph takes what ``Model.predict`` takes, uint8 images (N, height, width, channels),
and returns class probabilities (N, classes), TTA included when the recipe uses it, so any ONNX
runtime reproduces trainval's predictions without pre-processing of its own. Selective TTA
(``tta_fraction`` below 1, as in the ``fast`` preset) is exported as TTA for every image: a fixed graph
cannot pick the least sure share of a batch, so its predictions can differ from ``Model.predict``'s
for the images outside that share (slightly, and for the better or the worse).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save as dump_safetensors
from torch import nn

from trainval import saving
from trainval.atomic_files import write_bytes_atomically
from trainval.errors import ExportError, OutputError
from trainval.model import Model
from trainval.training.tta import tta_logits

FORMATS = ("onnx", "safetensors")
_INSTALL_HINT = "install the ONNX extras with: pip install 'trainval[onnx]'"


class ProbabilityGraph(nn.Module):
    """uint8 NHWC images in, class probabilities out: ``Model.predict`` as one module, in fp32."""

    def __init__(self, module: nn.Module, tta: int) -> None:
        super().__init__()
        self.module = module
        self.tta = tta

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        inputs = images.permute(0, 3, 1, 2).float() / 255.0
        return torch.softmax(tta_logits(self.module, inputs, self.tta), dim=1)


@dataclass
class OnnxCheck:
    """How an exported ONNX file's predictions compare with PyTorch's on the same images."""

    images: int
    same_top1: int
    max_probability_difference: float


def export_model(model: Model, path: str | os.PathLike[str], file_format: str) -> Path:
    """Write ``model`` to the file ``path`` as ``"onnx"`` or ``"safetensors"`` (weights plus the model's
    spec in the file's metadata); the file appears complete or not at all."""
    path = Path(path)
    if file_format == "safetensors":
        tensors = saving.weight_tensors(model.module)
        metadata = {"format": saving.FORMAT, "spec": json.dumps({**model.description(),
                                                                 "evaluation": model.evaluation_settings()})}
        _write(path, dump_safetensors(tensors, metadata=metadata))
    elif file_format == "onnx":
        _write(path, _onnx_bytes(model))
    else:
        raise ExportError(f"unknown export format {file_format!r}; choose one of {', '.join(FORMATS)}")
    return path


def _onnx_bytes(model: Model) -> bytes:
    try:
        import onnx
        import onnxscript  # noqa: F401  (torch's exporter needs it)
    except ImportError as error:
        raise ExportError(f"exporting to ONNX needs the packages onnx and onnxscript ({error}); {_INSTALL_HINT}") from error
    if model.input_shape is None:
        raise ExportError("the model does not know its input shape yet; export a trained or loaded model")
    if torch.__version__ < "2.5":  # a TorchVersion: compares as a version, not as text
        raise ExportError(f"exporting to ONNX needs torch >= 2.5 (this is {torch.__version__}); upgrade torch")
    was_training = model.module.training
    graph = ProbabilityGraph(model.module, model.tta).eval()
    example = torch.zeros((2, *model.input_shape), dtype=torch.uint8)
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)  # its notes on its own internals (no torchvision) are not the user's business
    with tempfile.TemporaryDirectory() as scratch, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        target = Path(scratch) / "model.onnx"
        try:
            torch.onnx.export(graph.cpu(), (example,), str(target), input_names=["images"],
                              output_names=["probabilities"], dynamic_shapes=({0: torch.export.Dim("batch")},),
                              dynamo=True, verbose=False)
        except Exception as error:  # the exporter raises many types; the user needs one message
            raise ExportError(f"torch could not export this model to ONNX ({type(error).__name__}: "
                              f"{str(error).splitlines()[0] if str(error) else ''})") from error
        finally:
            model.module.to(model.device).train(was_training)
            exporter_log.setLevel(level)
        exported = onnx.load(str(target))
    onnx.helper.set_model_props(exported, {"class_names": json.dumps(model.class_names),
                                           "input": "uint8 images (N, height, width, channels)",
                                           "output": "class probabilities (N, classes)"})
    return exported.SerializeToString()


def check_onnx(model: Model, path: str | os.PathLike[str], images: np.ndarray | None = None) -> OnnxCheck:
    """Run the ONNX file at ``path`` with onnxruntime on uint8 ``images`` (default: 64 seeded random
    ones) and compare its probabilities with PyTorch's in fp32."""
    try:
        import onnxruntime
    except ImportError as error:
        raise ExportError(f"checking an ONNX file needs onnxruntime; {_INSTALL_HINT}") from error
    if images is None:
        images = np.random.default_rng(0).integers(0, 256, (64, *model.input_shape), dtype=np.uint8)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    onnx_probabilities = session.run(None, {"images": images})[0]
    was_training = model.module.training
    graph = ProbabilityGraph(model.module, model.tta).eval()
    with torch.no_grad():
        torch_probabilities = graph(torch.from_numpy(images).to(model.device)).cpu().numpy()
    model.module.train(was_training)
    return OnnxCheck(len(images), int((onnx_probabilities.argmax(1) == torch_probabilities.argmax(1)).sum()),
                     float(np.abs(onnx_probabilities - torch_probabilities).max()))


def _write(path: Path, data: bytes) -> None:
    try:
        write_bytes_atomically(path, data)
    except OSError as error:
        raise OutputError(f"cannot write {path} ({error.strerror or error}); choose a writable --output") from error
