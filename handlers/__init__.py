"""Code that runs inside TorchServe workers.

A served model is a *runtime* (how the artifact executes: TorchScript, AOTInductor ``.pt2``,
ONNX Runtime or eager PyTorch) composed with a *task codec* (how requests become tensors and
tensors become answers: text embedding, image classification, raw tensors). ``service.py``
wires the two together for TorchServe; ``entry.py`` is the file packaged into each ``.mar``.
"""
