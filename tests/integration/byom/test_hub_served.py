"""A local torch.hub entrypoint with pretrained weights, served through TorchServe and the
gateway, answers what ``torch.hub.load`` builds."""

from __future__ import annotations

import torch

from tests.integration.byom.conftest import ByomStore, Served


def test_served_entrypoint_matches_torch_hub_load(
    byom_store: ByomStore, byom_served: Served
) -> None:
    folder = byom_store.fixtures["hub"]
    checkpoints = folder / ".servegate" / "torch" / "hub" / "checkpoints"
    model = torch.hub.load(  # type: ignore[no-untyped-call]
        str(folder / "repo"), "tinynet", source="local", width=12
    )
    model.load_state_dict(torch.load(checkpoints / "tinynet.pt", weights_only=True))
    images = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(11))
    with torch.no_grad():
        expected = model.eval()(images)
    with byom_served.gateway.client() as client:
        resp = client.post("/predictions/hub", json={"inputs": images.tolist()})
    assert resp.status_code == 200, resp.text
    torch.testing.assert_close(torch.tensor(resp.json()["outputs"]), expected, atol=1e-5, rtol=1e-4)
