"""Thin REST protocol layers over ``gateway.dataplane``: TorchServe-compatible and OIP v2."""
