"""servegate: verified PyTorch exports served by TorchServe behind a traffic-splitting gateway."""

__version__ = "0.1.0"
