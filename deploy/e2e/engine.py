"""The Docker engine, the local base image and the image builds.

Without Docker Hub the official base images cannot be pulled, so a Debian bookworm base with
Python 3.11 is made here with debootstrap and ``docker import``. It trusts what this machine
trusts: certificates in the host's CA bundle that Debian's lacks (a proxy's own CA, say) are
added, or nothing inside a build could reach the package indexes through such a proxy.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from deploy.e2e.steps import StepFailed

log = logging.getLogger("servegate.e2e.engine")

HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
_PEM = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)
# Registry and mirror hosts stay out of the run's log, which is kept in the repository.
_REMOTE = re.compile(r"https?://(?!127\.0\.0\.1)[^\s/]+\S*")


def shown(text: str) -> str:
    return _REMOTE.sub("<registry>", text)


def docker(*args: str, timeout: float = 120, check: bool = True) -> str:
    """Run ``docker ARGS`` and return its stdout; a failure raises with its stderr."""
    proc = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and proc.returncode != 0:
        raise StepFailed(f"docker {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
    return proc.stdout


def engine_running() -> bool:
    try:
        info = subprocess.run(["docker", "info"], capture_output=True, timeout=20, check=False)
        return info.returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def ensure_engine(log_file: Path, timeout_s: float = 60) -> str:
    """Start ``dockerd`` unless an engine answers; it is left running for the next run."""
    if engine_running():
        return "already running"
    log.info("starting dockerd (log: %s)", log_file)
    with log_file.open("ab") as out:
        subprocess.Popen(["dockerd"], stdout=out, stderr=out, start_new_session=True)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if engine_running():
            return "started"
        time.sleep(1)
    raise StepFailed(f"dockerd did not answer within {timeout_s:.0f} s; see {log_file}")


def image_exists(name: str) -> bool:
    argv = ["docker", "image", "inspect", name]
    return subprocess.run(argv, capture_output=True, timeout=30, check=False).returncode == 0


def debian_mirror() -> str:
    """The Debian mirror this machine's apt uses (the first ``URIs:``/``deb`` line)."""
    sources = [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*")]
    for path in sources:
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            m = re.match(r"\s*(?:URIs:|deb)\s+(?:\[[^]]*\]\s+)?(\S+/debian)/?\s*", line)
            if m:
                return m.group(1)
    raise StepFailed("no Debian mirror in /etc/apt/sources*; pass --debian-mirror")


def build_base_image(name: str, mirror: str, log_file: Path) -> None:
    """debootstrap a minimal bookworm with python3 and venv, add the host's extra CAs, import."""
    with tempfile.TemporaryDirectory(prefix="servegate-rootfs-", dir="/var/tmp") as tmp:
        root = Path(tmp)
        include = "--include=python3,python3-venv,ca-certificates"
        argv = ["debootstrap", "--variant=minbase", include, "bookworm", str(root), mirror]
        _run_logged(argv, log_file, timeout=1200)
        added = add_host_certificates(root)
        if added:
            _run_logged(["chroot", str(root), "update-ca-certificates"], log_file, timeout=120)
        log.info("base image %s: %d CA certificate(s) added from the host", name, added)
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(
            ["docker", "import", "-", name], stdin=tar.stdout, capture_output=True, check=False
        )
        tar.wait()
        if imported.returncode != 0 or tar.returncode != 0:
            raise StepFailed(f"docker import {name} failed: {imported.stderr.decode()}")


def add_host_certificates(root: Path) -> int:
    ours = set(_PEM.findall(HOST_CA_BUNDLE.read_text())) if HOST_CA_BUNDLE.is_file() else set()
    theirs = set(_PEM.findall((root / "etc/ssl/certs/ca-certificates.crt").read_text()))
    extra = sorted(ours - theirs)
    target = root / "usr/local/share/ca-certificates"
    target.mkdir(parents=True, exist_ok=True)
    for i, pem in enumerate(extra):
        (target / f"build-host-{i}.crt").write_text(pem + "\n")
    return len(extra)


def build(
    dockerfile: Path,
    tag: str,
    context: Path,
    build_args: Mapping[str, str],
    log_file: Path,
) -> None:
    """``docker build`` with the legacy builder (no buildx plugin here) on the host's network,
    so the build reaches indexes served on loopback."""
    argv = ["docker", "build", "--network", "host", "-f", str(dockerfile), "-t", tag]
    for key, value in build_args.items():
        argv += ["--build-arg", f"{key}={value}"]
    _run_logged([*argv, str(context)], log_file, timeout=3600, env={"DOCKER_BUILDKIT": "0"})


def _run_logged(
    argv: Sequence[str], log_file: Path, timeout: float, env: Mapping[str, str] | None = None
) -> None:
    log.info("$ %s  (output: %s)", shown(" ".join(argv)), log_file)
    with log_file.open("ab") as out:
        out.write(f"\n$ {' '.join(argv)}\n".encode())
        out.flush()
        proc = subprocess.run(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
            env={**os.environ, **(env or {})},
        )
    if proc.returncode != 0:
        tail = log_file.read_text(errors="replace").splitlines()[-25:]
        raise StepFailed(shown(f"{argv[0]} exited {proc.returncode}:\n" + "\n".join(tail)))
