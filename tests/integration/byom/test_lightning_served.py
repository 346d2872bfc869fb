"""A Lightning checkpoint exported to TorchScript answers, through TorchServe and the gateway,
what the LightningModule itself computes."""

from __future__ import annotations

import importlib
import sys

import torch

from tests.integration.byom.conftest import ByomStore, Served


def test_served_regressor_matches_the_lightning_module(
    byom_store: ByomStore, byom_served: Served
) -> None:
    folder = byom_store.fixtures["lightning"]
    sys.path.insert(0, str(folder))
    try:
        source = importlib.import_module("byom_lit_served")
    finally:
        sys.path.remove(str(folder))
    # The test trusts its own checkpoint; servegate never loads it this way.
    module = source.Regressor.load_from_checkpoint(
        str(folder / "byom_lit_served.ckpt"), weights_only=False
    ).eval()
    assert module.hparams.config.hidden == 24
    rows = torch.randn(5, 8, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        expected = module(rows)
    direct = byom_served.torchserve.predict(
        byom_store.archive("lightning"), json={"inputs": rows.tolist()}
    )
    with byom_served.gateway.client() as client:
        routed = client.post("/predictions/lightning", json={"inputs": rows.tolist()})
    for resp in (direct, routed):
        assert resp.status_code == 200, resp.text
        torch.testing.assert_close(torch.tensor(resp.json()["outputs"]), expected)
