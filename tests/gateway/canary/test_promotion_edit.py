"""A promotion rewrites the stable variant's target and both weights in gateway.yaml, and leaves
a file that reads true: stable's end-of-line comments (which described its old model) give way
to one saying where its model came from, and a shadow copying traffic to the canary (now the
same model as stable) is removed with a note. Every other byte survives."""

from __future__ import annotations

from gateway.config import parse_config
from gateway.config.edit import with_promotion

RAW = b"""# ops notes stay
backends:
  ts: {inference_url: "http://127.0.0.1:8080"}   # flow style elsewhere is fine
routes:
  m:
    variants:
      - name: stable      # TorchScript
        backend: ts
        model: mlp_torchscript   # the baseline
        weight: 50
      - name: canary      # ONNX
        backend: ts
        model: mlp_onnx
        version: "2.0"
        weight: 50        # ramped by the analysis
    shadow:               # compares the canary's answers with stable's
      variant: canary
      percent: 10
      compare: cosine
    timeout_s: 5
    analysis:
      canary: canary
      steps: [10, 50]
      checks: {error_rate: {max: 0.01}, divergence: {min: 0.999}}
"""


def test_promotion_moves_the_canary_target_into_stable_and_the_file_reads_true() -> None:
    new_raw, config = with_promotion(RAW, "m", parse_config(RAW), "canary", "on 2026-12-01")
    route = config.routes["m"]
    stable, canary = route.variants
    assert (stable.model, stable.version, stable.weight) == ("mlp_onnx", "2.0", 100)
    assert (canary.model, canary.weight) == ("mlp_onnx", 0)
    text = new_raw.decode()
    for kept in ("# ops notes stay", "# ramped by the analysis", "# flow style", "# ONNX"):
        assert kept in text
    # Stable's old comments described TorchScript: gone, replaced by where its model came from.
    assert "TorchScript" not in text and "# the baseline" not in text
    assert (
        "      - name: stable  # promoted from canary (mlp_onnx/2.0) on 2026-12-01\n"
        '        version: "2.0"\n'
        '        backend: "ts"\n'
        '        model: "mlp_onnx"\n'
        "        weight: 100\n"
    ) in text
    assert "        weight: 0        # ramped by the analysis\n" in text
    # No shadow copies traffic to the model stable serves; the rest of the route is intact.
    assert route.shadow is None
    assert "    # shadow to canary removed at its promotion (same model as stable now)" in text
    assert "compare: cosine" not in text and "    timeout_s: 5\n" in text
    assert route.analysis is not None and route.analysis.checks.divergence is not None


def test_a_shadow_to_another_variant_stays() -> None:
    raw = RAW.replace(b"variant: canary\n      percent", b"variant: stable\n      percent")
    raw = raw.replace(b", divergence: {min: 0.999}", b"")
    _, config = with_promotion(raw, "m", parse_config(raw), "canary")
    shadow = config.routes["m"].shadow
    assert shadow is not None and shadow.variant == "stable"
