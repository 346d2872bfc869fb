"""A promotion rewrites only the stable variant's target and both weights in gateway.yaml:
comments, layout and every other byte survive, and a defaulted field is written out."""

from __future__ import annotations

from gateway.admin.persist import with_promotion
from gateway.config import parse_config

RAW = b"""# ops notes stay
backends:
  ts: {inference_url: "http://127.0.0.1:8080"}   # flow style elsewhere is fine
routes:
  m:
    variants:
      - name: stable      # the baseline
        backend: ts
        model: mlp_torchscript
        weight: 50
      - name: canary
        backend: ts
        model: mlp_onnx
        version: "2.0"
        weight: 50        # ramped by the analysis
    analysis:
      canary: canary
      steps: [10, 50]
      checks: {error_rate: {max: 0.01}}
"""


def test_promotion_moves_the_canary_target_into_stable() -> None:
    new_raw, config = with_promotion(RAW, "m", parse_config(RAW), "canary")
    stable, canary = config.routes["m"].variants
    assert (stable.model, stable.version, stable.weight) == ("mlp_onnx", "2.0", 100)
    assert (canary.model, canary.weight) == ("mlp_onnx", 0)
    text = new_raw.decode()
    for kept in ("# ops notes stay", "# the baseline", "# ramped by the analysis", "# flow style"):
        assert kept in text
    assert '      - name: stable      # the baseline\n        version: "2.0"\n' in text
    assert '        model: "mlp_onnx"\n' in text
    assert "        weight: 0        # ramped by the analysis\n" in text
