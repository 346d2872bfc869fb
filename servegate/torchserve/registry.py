"""Live registration: load a pinned archive from the model store into a running TorchServe, and
unload a version, without restarting it (every model already there keeps answering).

What TorchServe is asked to load is never a URL or a path a caller chose. ``register(name)``
takes the *name* of an archive in the instance's model store and refuses, before TorchServe
hears of it: a URL, a path (``/``, ``..``), a name that is not ``*.mar``, an archive without a
pin, and one whose bytes differ from its pin. It then copies the archive into the instance's
private store (hashing as it copies: ``servegate.pins.copy_verified``), checks the copy's
manifest (every file's SHA-256, as the worker will) and only then asks TorchServe's management
API, on loopback with the management key, to register that file *name* from its model store,
which is the private store (``allowed_urls`` is limited to it too). Unloading is
``DELETE /models/<model>/<version>``.

Errors::

    RegistryError               the instance cannot be used (not started by servegate serve,
      |                         register API off, TorchServe unreachable)
      +-- RegistrationRefused   refused before TorchServe saw anything (name, pin, manifest)
      +-- RegistrationFailed    TorchServe refused it, or it did not load or warm up
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from handlers.errors import IntegrityError
from handlers.manifest import Manifest
from servegate import pins
from servegate.torchserve.identity import ServedAs, served_as
from servegate.torchserve.keys import KeyFile

log = logging.getLogger("servegate.registry")
STATE_FILE = "servegate-serve.json"  # written by process.TorchServe.start
ARCHIVE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,200}\.mar$")
URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


class RegistryError(Exception):
    """The running TorchServe cannot register or unregister (see the message)."""


class RegistrationRefused(RegistryError):
    """Refused before TorchServe saw anything: not a pinned archive name of the store."""


class RegistrationFailed(RegistryError):
    """TorchServe refused the archive, or the model did not load or warm up."""


@dataclass(frozen=True)
class Instance:
    """A TorchServe that ``servegate serve`` started, as its working directory records it."""

    workdir: Path
    store: Path
    pin_file: Path
    inference_url: str
    management_url: str
    model_api: bool

    @property
    def staged_store(self) -> Path:
        return self.workdir / "store"

    @property
    def key_file(self) -> Path:
        return self.workdir / "key_file.json"

    @classmethod
    def find(cls, workdir: Path) -> Instance:
        try:
            state: dict[str, Any] = json.loads((workdir / STATE_FILE).read_text())
            return cls(
                workdir=workdir,
                store=Path(state["store"]),
                pin_file=Path(state["pins"]),
                inference_url=str(state["inference_url"]),
                management_url=str(state["management_url"]),
                model_api=bool(state["model_api"]),
            )
        except (OSError, ValueError, KeyError) as exc:
            raise RegistryError(
                f"no TorchServe started by `servegate serve` (this version) in {workdir} "
                f"({type(exc).__name__}): start it with `servegate serve` or `make demo`"
            ) from None


def check_name(name: str) -> None:
    """Refuse anything but the plain file name of an archive (``NAME.mar``)."""
    if URL_SCHEME.match(name) or "://" in name:
        raise RegistrationRefused(
            f"{name!r} is a URL: only archives of the model store are registered, by name"
        )
    if "/" in name or "\\" in name or ".." in name:
        raise RegistrationRefused(
            f"{name!r} is a path: give the name of an archive in the model store (NAME.mar)"
        )
    if not ARCHIVE_NAME.match(name):
        raise RegistrationRefused(f"{name!r} is not the name of a .mar archive")


@dataclass(frozen=True)
class Staged:
    name: str
    path: Path
    served: ServedAs
    manifest: Manifest
    min_workers: int


class Registry:
    def __init__(self, instance: Instance, timeout_s: float = 300.0) -> None:
        self.instance = instance
        self.timeout_s = timeout_s

    # -- registering -------------------------------------------------------------------------
    def stage(self, name: str) -> Staged:
        """Check ``name`` and its pin, copy it into the private store and check its manifest."""
        check_name(name)
        inst = self.instance
        try:
            pin = pins.read(inst.pin_file).archives.get(name)
        except pins.PinError as exc:
            raise RegistrationRefused(str(exc)) from None
        if pin is None:
            raise RegistrationRefused(
                f"{name} (in {inst.store}) has no pin in {inst.pin_file}: only archives that "
                "`servegate export` wrote into this store are registered; export it again"
            )
        source = inst.store / name
        if source.is_symlink() or not source.is_file():
            raise RegistrationRefused(f"{name} is not a file of the model store {inst.store}")
        dest = inst.staged_store / name
        dest.unlink(missing_ok=True)
        try:
            pins.copy_verified(source, pin, dest)
        except pins.PinError as exc:
            raise RegistrationRefused(str(exc)) from None
        try:
            served, manifest, workers = _checked(dest)
        except RegistrationRefused:
            dest.unlink(missing_ok=True)
            raise
        return Staged(name, dest, served, manifest, workers)

    def register(self, name: str) -> Staged:
        """Stage ``name`` and load it; return once its workers are ready."""
        if not self.instance.model_api:
            raise RegistryError(
                f"the TorchServe in {self.instance.workdir} runs with its register API off "
                "(--no-model-api, or no token authorization): restart it with `servegate serve`"
            )
        staged = self.stage(name)
        if self.registered(staged.served) is not None:
            staged.path.unlink(missing_ok=True)
            raise RegistrationFailed(
                f"{staged.served.path} is registered already: unregister it first"
            )
        params = {
            "url": name,
            "initial_workers": str(staged.min_workers),
            "synchronous": "true",
        }
        resp = self._management("POST", "/models", params=params, timeout=self.timeout_s)
        if resp.status_code != 200:
            staged.path.unlink(missing_ok=True)
            raise RegistrationFailed(
                f"TorchServe refused to register {name}: HTTP {resp.status_code} {_said(resp)}"
            )
        if self.registered(staged.served) is not True:
            self.unregister(staged.served, name)
            raise RegistrationFailed(f"{staged.served.path} registered but no worker is ready")
        log.info("registered %s as %s", name, staged.served.path)
        return staged

    # -- asking and unloading ----------------------------------------------------------------
    def registered(self, served: ServedAs) -> bool | None:
        """None: not registered; True: a worker is ready; False: registered, none ready."""
        resp = self._management("GET", f"/models/{served.path}")
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise RegistryError(f"TorchServe answered HTTP {resp.status_code}: {_said(resp)}")
        workers = resp.json()[0].get("workers", [])
        return any(w.get("status") == "READY" for w in workers)

    def unregister(self, served: ServedAs, name: str | None = None) -> bool:
        """Unload ``served`` (True if it was registered) and drop its staged copy ``name``.
        TorchServe will not remove a model's default version while others exist: another
        version becomes the default first."""
        resp = self._management("DELETE", f"/models/{served.path}", timeout=self.timeout_s)
        # TorchServe 0.12 answers 403 (InvalidModelVersionException) for the default version.
        if resp.status_code in (400, 403) and "default version" in resp.text.lower():
            others = [v for v in self.versions(served.model) if v != served.version]
            if others:
                moved = self._management("PUT", f"/models/{served.model}/{others[0]}/set-default")
                if moved.status_code != 200:
                    raise RegistryError(
                        f"TorchServe did not make {served.model}/{others[0]} the default version "
                        f"(needed to unload {served.path}): {_said(moved)}"
                    )
                resp = self._management("DELETE", f"/models/{served.path}", timeout=self.timeout_s)
        if resp.status_code not in (200, 404):
            raise RegistryError(f"TorchServe did not unregister {served.path}: {_said(resp)}")
        if name is not None:
            check_name(name)
            (self.instance.staged_store / name).unlink(missing_ok=True)
        if resp.status_code == 200:
            log.info("unregistered %s", served.path)
        return resp.status_code == 200

    def versions(self, model: str) -> list[str]:
        resp = self._management("GET", f"/models/{model}/all")
        if resp.status_code != 200:
            return []
        return [str(m["modelVersion"]) for m in resp.json()]

    # -- TorchServe's management API -----------------------------------------------------------
    def _management(
        self, method: str, path: str, *, params: dict[str, str] | None = None, timeout: float = 30
    ) -> httpx.Response:
        """One management call with the management key; an expired key is renewed once (with
        the file's non-expiring API key, as the gateway renews its inference key)."""
        for attempt in (1, 2):
            keys = _keys(self.instance.key_file)
            headers = {"Authorization": f"Bearer {keys['management']}"}
            try:
                resp = httpx.request(
                    method,
                    f"{self.instance.management_url}{path}",
                    params=params,
                    headers=headers,
                    timeout=timeout,
                )
            except httpx.HTTPError as exc:
                raise RegistryError(
                    f"cannot reach TorchServe's management API at "
                    f"{self.instance.management_url} ({type(exc).__name__}): is it running?"
                ) from None
            if attempt == 1 and resp.status_code == 400 and "token" in resp.text.lower():
                self._renew(keys["api"])
                continue
            return resp
        raise AssertionError("unreachable")

    def _renew(self, api_key: str) -> None:
        log.info("TorchServe refused the management key (expired?): asking for a new one")
        httpx.get(
            f"{self.instance.management_url}/token",
            params={"type": "management"},
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=10,
        )


def _keys(key_file: Path) -> dict[str, str]:
    try:
        keys = KeyFile.read(key_file)
        api = json.loads(key_file.read_text()).get("API", {}).get("key", "")
    except (OSError, ValueError) as exc:
        raise RegistryError(f"cannot read TorchServe's keys in {key_file}: {exc}") from None
    return {"management": keys.management.key, "api": str(api)}


def _checked(staged: Path) -> tuple[ServedAs, Manifest, int]:
    """The archive's identity, its manifest checked over every file (as the worker will check
    it), and its minWorkers; ``RegistrationRefused`` for anything amiss."""
    try:
        served = served_as(staged)
        with tempfile.TemporaryDirectory(prefix="servegate-check-") as tmp:
            with zipfile.ZipFile(staged) as archive:
                archive.extractall(tmp)
            manifest = Manifest.read(Path(tmp))
            manifest.verify(Path(tmp))
            config_file = Path(tmp) / "model-config.yaml"
            config = yaml.safe_load(config_file.read_text()) if config_file.is_file() else {}
    except (ValueError, IntegrityError, zipfile.BadZipFile, OSError, yaml.YAMLError) as exc:
        raise RegistrationRefused(f"{staged.name} fails its manifest check: {exc}") from None
    if manifest.version != served.version:
        raise RegistrationRefused(
            f"{staged.name}: servegate.json says version {manifest.version}, TorchServe's "
            f"manifest {served.version}"
        )
    workers = config.get("minWorkers", 1) if isinstance(config, dict) else 1
    return served, manifest, max(1, int(workers))


def _said(resp: httpx.Response) -> str:
    try:
        return str(resp.json().get("message", resp.text))[:500]
    except ValueError:
        return resp.text[:500]
