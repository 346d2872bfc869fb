"""``servegate rollout``: from a verified archive of a new model version to a running canary,
and on to a promoted version (the previous one unloaded after a grace period) or a rollback
(the new version unloaded, the route exactly as before). See docs/rollout.md.

``candidate`` finds and checks the archive (pin, export report); ``state`` persists each
rollout beside the CLI's other state; ``steps`` runs it against TorchServe
(``servegate.torchserve.registry``) and the gateway's admin API, never editing a file itself.
"""
