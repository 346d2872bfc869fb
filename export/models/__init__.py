"""Built-in model specs: ``mlp`` (tiny tensors), ``minilm`` (text), ``resnet18`` and ``resnet50``
(images)."""
