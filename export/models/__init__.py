"""Built-in model specs: ``mlp`` (tiny tensors), ``minilm`` (text), ``resnet18`` (images)."""
