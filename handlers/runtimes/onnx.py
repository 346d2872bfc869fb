"""ONNX Runtime sessions: CUDAExecutionProvider on a GPU worker, CPU otherwise."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

log = logging.getLogger(__name__)


class OnnxRuntime:
    format = "onnx"

    def __init__(self, session: ort.InferenceSession, device: torch.device) -> None:
        self.device = device
        self._session = session
        self._input_names = [i.name for i in session.get_inputs()]

    @classmethod
    def load(cls, artifact: Path, device: torch.device) -> OnnxRuntime:
        providers: list[str | tuple[str, dict[str, str]]] = ["CPUExecutionProvider"]
        if device.type == "cuda":
            if hasattr(ort, "preload_dlls"):
                # Use the CUDA/cuDNN libraries of the nvidia-* wheels torch already loaded.
                ort.preload_dlls()
            # TF32 off: the artifact was verified against true fp32 eager; ORT's default TF32
            # convolutions moved ResNet-18 logits by 1.6e-3 on an H200.
            cuda_options = {"device_id": str(device.index or 0), "use_tf32": "0"}
            providers = [("CUDAExecutionProvider", cuda_options), "CPUExecutionProvider"]
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(str(artifact), options, providers=providers)
        active = session.get_providers()
        if device.type == "cuda" and "CUDAExecutionProvider" not in active:
            log.warning("CUDAExecutionProvider unavailable; ONNX Runtime runs %s on CPU", artifact)
            device = torch.device("cpu")
        return cls(session, device)

    def run(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        feeds = {
            name: np.ascontiguousarray(t.detach().cpu().numpy())
            for name, t in zip(self._input_names, inputs, strict=True)
        }
        (out, *_) = self._session.run(None, feeds)
        return torch.from_numpy(np.asarray(out))
