"""Turn a PyTorch model into verified artifacts and TorchServe archives.

``spec`` describes a model; ``registry`` resolves a name or a spec path; ``exporters`` holds
one module per format; ``parity`` and ``timing`` check and time every reloaded artifact
against eager; ``package`` builds the ``.mar`` archives; ``pipeline`` runs it all.
"""
