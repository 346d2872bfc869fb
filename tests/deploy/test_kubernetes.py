"""deploy/k8s: each overlay rendered by kustomize (the one built into kubectl) and every
resource validated against the Kubernetes API schemas (kubernetes-validate, strict: unknown
fields fail), then the properties the design relies on."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from gateway.config import parse_config
from tests.deploy.support import DEPLOY, OVERLAYS

K8S_VERSION = "1.37.0"
MANAGEMENT_PORTS = {8081, 7071}


def render(overlay: str | Path) -> list[dict[str, Any]]:
    """An overlay of deploy/k8s by name, or a kustomization directory of a test's own."""
    # kubectl (in this machine image) has kustomize v5 built in: `kubectl version --client`.
    if shutil.which("kubectl") is None:
        pytest.fail("kubectl is needed to render the kustomize overlays (kubectl kustomize)")
    where = overlay if isinstance(overlay, Path) else DEPLOY / "k8s" / "overlays" / overlay
    out = subprocess.run(
        ["kubectl", "kustomize", "--load-restrictor", "LoadRestrictionsNone", str(where)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    return request.param, render(request.param)


def one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def container(deployment: dict[str, Any], name: str) -> dict[str, Any]:
    return next(
        c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == name
    )


def test_every_resource_is_valid_against_the_api_schemas(rendered: Any) -> None:
    overlay, docs = rendered
    kinds = sorted(d["kind"] for d in docs)
    for kind in (
        "Deployment",
        "HorizontalPodAutoscaler",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "Service",
        "ConfigMap",
    ):
        assert kind in kinds, f"{overlay}: no {kind}"
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        assert doc["metadata"].get("namespace", "servegate") == "servegate"
    assert "Secret" not in kinds, "no secret may ship in the manifests (no default secrets)"


def test_schema_validation_catches_a_wrong_field() -> None:
    doc = one(render("cpu"), "Deployment", "servegate-gateway")
    container(doc, "gateway")["readinesProbe"] = {"httpGet": {"path": "/", "port": 8000}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_gateway_replicas_probes_config_and_secret(rendered: Any) -> None:
    _, docs = rendered
    gw = one(docs, "Deployment", "servegate-gateway")
    assert gw["spec"]["replicas"] >= 2
    assert one(docs, "HorizontalPodAutoscaler", "servegate-gateway")["spec"]["minReplicas"] >= 2
    c = container(gw, "gateway")
    assert c["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    ports = {port["name"]: port["containerPort"] for port in c["ports"]}
    assert c["livenessProbe"]["grpc"]["port"] == ports["grpc"]  # grpc.health.v1 on the listener
    assert {"cpu", "memory"} <= set(c["resources"]["requests"]) and c["resources"]["limits"]
    env = {e["name"]: e for e in c["env"]}
    assert env["SERVEGATE_GATEWAY_ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "servegate-admin",
        "key": "token",
    }
    assert env["SERVEGATE_GATEWAY_HOST"]["value"] == "0.0.0.0"
    # Replicas only route; canary analysis runs in exactly one place.
    assert env["SERVEGATE_GATEWAY_CANARY_ANALYSIS"]["value"] == "false"
    annotations = gw["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == "8001"
    # The ConfigMap the pods mount holds a config the gateway accepts.
    cm = one(docs, "ConfigMap", "servegate-gateway-config")
    parse_config(cm["data"]["gateway.yaml"].encode(), "ConfigMap servegate-gateway-config")
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    assert "subPath" not in mounts["config"], "a subPath mount never sees ConfigMap updates"


def test_torchserve_binds_wide_but_management_is_never_exposed(rendered: Any) -> None:
    overlay, docs = rendered
    ts = one(docs, "Deployment", "torchserve")
    c = container(ts, "torchserve")
    assert {"serve", "--foreground", "--host=0.0.0.0"} <= set(c["args"])
    assert c["readinessProbe"]["httpGet"]["path"] == "/ping"
    ports = {p["containerPort"] for p in c["ports"]}
    assert not ports & MANAGEMENT_PORTS
    for svc in (d for d in docs if d["kind"] == "Service"):
        exposed = {p["port"] for p in svc["spec"]["ports"]} | {
            p["targetPort"] for p in svc["spec"]["ports"] if isinstance(p["targetPort"], int)
        }
        assert not exposed & MANAGEMENT_PORTS, f"Service {svc['metadata']['name']}"
    gpu = c["resources"]["limits"].get("nvidia.com/gpu")
    assert gpu == ("1" if overlay == "gpu" else None)


def test_only_the_gateway_reaches_torchserve(rendered: Any) -> None:
    _, docs = rendered
    policy = one(docs, "NetworkPolicy", "torchserve-ingress")
    assert policy["spec"]["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "torchserve"}
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    for rule in policy["spec"]["ingress"]:
        ports = {p["port"] for p in rule["ports"]}
        assert not ports & MANAGEMENT_PORTS
        sources = [f["podSelector"]["matchLabels"]["app.kubernetes.io/name"] for f in rule["from"]]
        assert sources in (["servegate-gateway"], ["prometheus"])
        if sources == ["prometheus"]:
            assert ports == {8082}, "Prometheus gets the metrics port only"
    for pdb in ("servegate-gateway", "torchserve"):
        assert one(docs, "PodDisruptionBudget", pdb)["spec"]


def test_dockerfiles_build_non_root_from_pip_without_a_system_jdk() -> None:
    for name in ("Dockerfile", "Dockerfile.gpu"):
        text = (DEPLOY / "docker" / name).read_text()
        assert text.count("\nFROM ") + text.startswith("FROM ") >= 2, f"{name}: multi-stage"
        assert "pip install ." in text
        assert "USER 10001" in text
        assert "COPY --from=build" in text
        lowered = text.lower()
        assert "openjdk" not in lowered and "default-jre" not in lowered, f"{name}: system JDK"
    assert "cuda" in (DEPLOY / "docker" / "Dockerfile.gpu").read_text().lower()


def _paths(root: Path) -> list[Path]:
    return sorted(root.rglob("*.yaml"))


def test_every_manifest_file_is_used() -> None:
    """A file under deploy/k8s that no kustomization lists would silently never deploy."""
    listed: set[Path] = set()
    for kfile in (DEPLOY / "k8s").rglob("kustomization.yaml"):
        k = yaml.safe_load(kfile.read_text())
        entries = [*k.get("resources", []), *(p["path"] for p in k.get("patches", []))]
        entries += [f for g in k.get("configMapGenerator", []) for f in g.get("files", [])]
        listed |= {(kfile.parent / e).resolve() for e in entries}
        listed.add(kfile.resolve())
    unused = [p for p in _paths(DEPLOY / "k8s") if p.resolve() not in listed]
    assert not unused


def _cancel_volumes(docs: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The volume each of the gateway and TorchServe has at the cancel directory they name."""
    gw, ts = one(docs, "Deployment", "servegate-gateway"), one(docs, "Deployment", "torchserve")
    env = {e["name"]: e.get("value") for e in container(gw, "gateway")["env"]}
    gw_dir = env["SERVEGATE_GATEWAY_CANCEL_DIR"]
    args = container(ts, "torchserve")["args"]
    ts_dir = next(a.split("=", 1)[1] for a in args if a.startswith("--cancel-dir="))
    assert gw_dir == ts_dir, "the gateway and TorchServe must name one directory"
    found = []
    for deployment, name, path in ((gw, "gateway", gw_dir), (ts, "torchserve", ts_dir)):
        mount = next(
            m for m in container(deployment, name)["volumeMounts"] if m["mountPath"] == path
        )
        assert not mount.get("readOnly")
        volumes = deployment["spec"]["template"]["spec"]["volumes"]
        found.append(next(v for v in volumes if v["name"] == mount["name"]))
    return found[0], found[1]


def test_the_cancel_directory_is_a_writable_volume_in_each_pod(rendered: Any) -> None:
    """Without a shared volume each pod has its own (the root filesystem is read-only: the
    gateway could not make the directory there); markers then reach no worker (docs)."""
    _, docs = rendered
    gw_volume, ts_volume = _cancel_volumes(docs)
    assert "emptyDir" in gw_volume and "emptyDir" in ts_volume


def test_the_generation_cancel_component_shares_one_readwritemany_volume(tmp_path: Path) -> None:
    k8s = DEPLOY / "k8s"
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                # kustomize takes only relative paths
                "resources": [os.path.relpath(k8s / "overlays" / "gpu", tmp_path)],
                "components": [os.path.relpath(k8s / "components" / "generation-cancel", tmp_path)],
            }
        )
    )
    docs = render(tmp_path)
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        assert doc["metadata"].get("namespace") == "servegate" or doc["kind"] == "Namespace"
    claim = one(docs, "PersistentVolumeClaim", "servegate-generation-cancel")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    gw_volume, ts_volume = _cancel_volumes(docs)
    for volume in (gw_volume, ts_volume):
        assert "emptyDir" not in volume
        assert volume["persistentVolumeClaim"] == {"claimName": "servegate-generation-cancel"}
