"""The servegate gateway: the traffic plane in front of TorchServe.

Clients call the data plane (TorchServe-compatible ``/predictions`` and OIP v2 REST); ops steer
traffic between model variants through ``gateway.yaml`` or the admin listener. The package never
imports torch: it forwards bytes and reads archive manifests with ``zipfile``.
"""
