"""``python -m deploy.e2e`` (``make test-deploy``): build, start, drive, break and tear down the
compose stack; exit 0 when every check held. See the package docstring."""

from __future__ import annotations

import argparse
import datetime
import logging
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from deploy.e2e import checks, engine, failure, mirror, observe
from deploy.e2e.stack import Ports, Stack
from deploy.e2e.steps import Step, StepFailed, Steps
from servegate import pins

log = logging.getLogger("servegate.e2e")
ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
OFFICIAL = {"prometheus": "prom/prometheus:v2.55.1", "grafana": "grafana/grafana:11.3.0"}
GATEWAY_UID = 10001  # the images' user (deploy/docker/Dockerfile)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    today = datetime.date.today().isoformat()
    p = argparse.ArgumentParser(prog="python -m deploy.e2e", description=__doc__)
    p.add_argument(
        "--base-image",
        default="servegate-base:bookworm-py311",
        help="Debian bookworm + Python 3.11 image; made with debootstrap if missing",
    )
    p.add_argument("--tag", default="e2e", help="tag of the servegate images built here")
    p.add_argument("--project", default="servegate-e2e", help="compose project name")
    p.add_argument("--debian-mirror", default=None, help="default: the one apt uses here")
    p.add_argument("--no-build", action="store_true", help="use the images already built")
    p.add_argument(
        "--reuse-archives",
        action="store_true",
        help="skip the export when model_store/ has both MiniLM archives",
    )
    p.add_argument("--keep", action="store_true", help="leave the stack up (debugging)")
    p.add_argument(
        "--log",
        type=Path,
        default=HERE / "runs" / f"{today}.log",
        help="full log and summary of this run (default: %(default)s)",
    )
    return p.parse_args(argv)


def setup_logging(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = logging.Formatter("%(asctime)s %(levelname)-5s %(name)s: %(message)s", "%H:%M:%S")
    handlers: list[logging.Handler] = [logging.StreamHandler(), logging.FileHandler(path, "w")]
    for h in handlers:
        h.setFormatter(fmt)
    logging.basicConfig(level=logging.INFO, handlers=handlers)
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class Run:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.steps = Steps()
        self.ports = Ports.free()
        self.token = os.environ.get("SERVEGATE_ADMIN_TOKEN") or secrets.token_hex(32)
        self.grafana_password = os.environ.get("GRAFANA_ADMIN_PASSWORD") or secrets.token_hex(16)
        self.images = {"prometheus": OFFICIAL["prometheus"], "grafana": OFFICIAL["grafana"]}
        self.services = ["torchserve", "gateway", "prometheus", "grafana"]
        self.stack: Stack | None = None

    def step(self, name: str, action: Callable[[Step], None]) -> None:
        with self.steps.step(name) as current:
            action(current)

    # -- 1-2: engine, base image, images ----------------------------------------------------
    def engine(self, s: Step) -> None:
        s.notes.append(f"dockerd {engine.ensure_engine(self.work / 'dockerd.log')}")
        if engine.image_exists(self.args.base_image):
            s.notes.append(f"base image {self.args.base_image} present")
            return
        mirror_url = self.args.debian_mirror or engine.debian_mirror()
        engine.build_base_image(self.args.base_image, mirror_url, self.work / "debootstrap.log")
        s.notes.append(f"base image {self.args.base_image} made with debootstrap")

    def build_servegate(self, s: Step) -> None:
        python = ROOT / ".venv" / "bin" / "python"
        with mirror.served(mirror.configured_file_indexes(python)) as pip_args:
            args = {"PYTHON_IMAGE": self.args.base_image, **pip_args}
            engine.build(
                ROOT / "deploy/docker/Dockerfile",
                self.image("servegate"),
                ROOT,
                args,
                self.work / "build-servegate.log",
            )
        size = engine.docker("image", "inspect", "-f", "{{.Size}}", self.image("servegate"))
        s.notes.append(f"{self.image('servegate')}: {int(size) / 1e9:.1f} GB")

    def build_models(self, s: Step) -> None:
        tag = self.image("servegate-models")
        engine.build(
            ROOT / "deploy/docker/Dockerfile.models",
            tag,
            ROOT,
            {"BASE_IMAGE": self.args.base_image},
            self.work / "build-models.log",
        )
        # As Kubernetes runs it: an init container copying into an emptyDir (world-writable).
        out = engine.docker(
            "run", "--rm", "--mount", "type=tmpfs,destination=/model-store,tmpfs-mode=1777", tag
        )
        copied = [line.split()[-1] for line in out.splitlines() if line.endswith(".mar")]
        if len(copied) < 2:
            raise StepFailed(f"the models image copied {copied}:\n{out}")
        s.notes.append(f"{tag} copies {copied}")

    def build_monitoring(self, s: Step) -> None:
        if not engine.image_exists(self.images["prometheus"]):
            self.images["prometheus"] = f"servegate-prometheus:{self.args.tag}"
            if not self.args.no_build:
                engine.build(
                    HERE / "Dockerfile.prometheus",
                    self.images["prometheus"],
                    HERE,
                    {"BASE_IMAGE": self.args.base_image},
                    self.work / "build-prom.log",
                )
            s.notes.append(
                f"no {OFFICIAL['prometheus']}: built {self.images['prometheus']} "
                "(Debian's prometheus)"
            )
        grafana = os.environ.get("GRAFANA_IMAGE", OFFICIAL["grafana"])
        if engine.image_exists(grafana):
            self.images["grafana"] = grafana
        else:
            self.services.remove("grafana")
            s.notes.append(f"no {grafana} image and none can be made here: Grafana not run")

    def image(self, name: str) -> str:
        return f"{name}:{self.args.tag}"

    # -- 3: export, compose up ----------------------------------------------------------------
    def export(self, s: Step) -> None:
        store = ROOT / "model_store"
        archives = [store / "minilm_torchscript.mar", store / "minilm_onnx.mar"]
        pinned = pins.read(pins.pin_file_for(store)).archives
        if self.args.reuse_archives and all(a.is_file() and a.name in pinned for a in archives):
            s.notes.append("archives reused")
            return
        argv = [
            str(ROOT / ".venv/bin/servegate"),
            "export",
            "minilm",
            "--formats",
            "torchscript,onnx",
            "--out",
            str(store),
        ]
        with (self.work / "export.log").open("w") as out:
            subprocess.run(argv, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, check=True)
        s.notes.append(", ".join(f"{a.name} {a.stat().st_size / 1e6:.0f} MB" for a in archives))

    def up(self, s: Step) -> None:
        env = {
            **self.ports.env(),
            "SERVEGATE_ADMIN_TOKEN": self.token,
            "GRAFANA_ADMIN_PASSWORD": self.grafana_password,
            "SERVEGATE_IMAGE_TAG": self.args.tag,
            "PROMETHEUS_IMAGE": self.images["prometheus"],
            "GRAFANA_IMAGE": self.images["grafana"],
        }
        self.stack = Stack(ROOT, self.args.project, env)
        self.stack.down()  # a previous run's leftovers
        self.stack.up(self.services)
        s.notes.append(f"services {self.services}; ports {self.ports}")

    def healthy(self, s: Step) -> None:
        self.live.wait_healthy(self.services, timeout_s=600)
        since_start = {svc: self.live.started_to_healthy(svc) for svc in self.services}
        s.notes.append(
            "first passing healthcheck after container start: "
            + ", ".join(
                f"{k} {v:.0f} s" if v is not None else f"{k} ?" for k, v in since_start.items()
            )
        )

    @property
    def live(self) -> Stack:
        assert self.stack is not None, "the stack is not up"
        return self.stack

    def url(self, port: int) -> str:
        return f"http://127.0.0.1:{port}"

    # -- 4: traffic and observation -----------------------------------------------------------
    def split(self, s: Step) -> None:
        result = checks.split(self.url(self.ports.http), 1000)
        s.notes.append(result.describe())
        checks.expect_split(result, {"stable": 90, "canary": 10}, tolerance_points=3)

    def oip(self, s: Step) -> None:
        s.notes.append(checks.oip_infer(self.url(self.ports.http)))

    def grpc(self, s: Step) -> None:
        s.notes.append(checks.grpc_infer(f"127.0.0.1:{self.ports.grpc}"))

    def prometheus(self, s: Step) -> None:
        prom = self.url(self.ports.prometheus)
        s.notes.extend(observe.check_prometheus(prom, checks.ROUTE))
        s.notes.append(observe.check_rules(prom))

    def dashboards(self, s: Step) -> None:
        s.notes.append(observe.check_dashboard_queries(self.url(self.ports.prometheus)))
        if "grafana" in self.services:
            s.notes.append(
                observe.check_grafana(self.url(self.ports.grafana), self.grafana_password)
            )
        else:
            s.notes.append("Grafana's API not checked: no Grafana image here")

    def admin(self, s: Step) -> None:
        weights = {"stable": 50, "canary": 50}
        admin_url = self.url(self.ports.admin)
        s.notes.append(checks.refused_on_read_only(admin_url, self.token, weights))
        # The documented way to let the admin API write: a copy writable by the image's user.
        config = self.work / "gateway-config"
        shutil.copytree(ROOT / "deploy/compose/gateway", config)
        for path in [config, *config.iterdir()]:
            os.chown(path, GATEWAY_UID, GATEWAY_UID)
        rw = {"SERVEGATE_CONFIG_DIR": str(config), "SERVEGATE_CONFIG_MODE": "rw"}
        self.live.recreate("gateway", rw)
        self.live.wait_healthy(["gateway"], timeout_s=120)
        change = checks.set_weights(admin_url, self.token, weights)
        on_disk = (config / "gateway.yaml").read_text()
        if "weight: 50" not in on_disk:
            raise StepFailed("the weight change is not in the mounted gateway.yaml")
        result = checks.split(self.url(self.ports.http), 400)
        s.notes.append(f"{change}; then {result.describe()}")
        checks.expect_split(result, {"stable": 50, "canary": 50}, tolerance_points=7.5)

    # -- 5: failure ---------------------------------------------------------------------------
    def kill(self, s: Step) -> None:
        s.notes.extend(
            failure.kill_torchserve(
                self.live, self.url(self.ports.http), self.url(self.ports.admin)
            )
        )

    # -- 6: teardown --------------------------------------------------------------------------
    def teardown(self, s: Step) -> None:
        if self.stack is None:
            return
        self.stack.save_logs(self.work / "compose.log")
        if self.args.keep:
            s.notes.append("--keep: left up")
            return
        self.stack.down()
        left = self.stack.compose("ps", "-q", check=False).split()
        s.notes.append(f"down -v; containers left: {len(left)}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.log)
    work = Path(tempfile.mkdtemp(prefix="servegate-e2e-"))
    log.info("work directory (build logs, compose logs): %s", work)
    run = Run(args, work)
    plan: list[tuple[str, Callable[[Step], None]]] = [
        ("1 engine + base image", run.engine),
        ("2 build servegate image", run.build_servegate),
        # The models image packs model_store/*.mar: the export comes first.
        ("2 export MiniLM (the models image packs it)", run.export),
        ("2 build models image", run.build_models),
        ("2 monitoring images", run.build_monitoring),
        ("3 docker-compose up (waits for health)", run.up),
        ("4 every service healthy", run.healthy),
        ("4 90/10 split, 1000 requests", run.split),
        ("4 OIP v2 (REST)", run.oip),
        ("4 gRPC (OIP v2) on the gateway", run.grpc),
        ("4 Prometheus series", run.prometheus),
        ("4 dashboard / Grafana", run.dashboards),
        ("4 admin API weight change", run.admin),
        ("5 TorchServe killed", run.kill),
    ]
    if args.no_build:
        plan = [p for p in plan if not p[0].startswith("2 build")]
    if args.no_build and args.reuse_archives:
        log.info("--no-build --reuse-archives: images and archives of an earlier run")
    ok = False
    try:
        for name, action in plan:
            run.step(name, action)
        ok = True
    except Exception:
        log.exception("test-deploy failed")
    finally:
        try:
            run.step("6 teardown", run.teardown)
        except Exception:
            ok = False
            log.exception("teardown failed")
    log.info("summary (%s):\n%s", "PASSED" if ok else "FAILED", run.steps.summary())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
