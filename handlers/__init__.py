"""Code that runs inside TorchServe workers.

A served model is a *runtime* (how the artifact executes: TorchScript, AOTInductor ``.pt2``,
ONNX Runtime or eager PyTorch; ``runtimes/``) composed with a *task codec* (how requests become
tensors and tensors become answers: text embedding, text and image classification, raw tensors;
``tasks/``). ``service.py`` wires the two together for TorchServe's batches;
``servegate_handler.py`` is the handler file packaged into each ``.mar`` (TorchServe's entry
point: ``handle(data, context)``); the rest of this package is imported from where servegate
is installed beside TorchServe. ``manifest.py`` is the archive's ``servegate.json``, checked
before anything loads.
"""
