"""A small client for the admin API, used by ``servegate routes`` and ``servegate canary``."""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from typing import Any

import httpx


class AdminClientError(Exception):
    """The admin API refused a call; the message is its ``error`` text."""


@dataclass(frozen=True)
class AdminClient:
    url: str
    token: str
    timeout_s: float = 10.0

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {
            "Authorization": f"Bearer {self.token}",
            "X-Servegate-Actor": _actor(),
            **kwargs.pop("headers", {}),
        }
        try:
            resp = httpx.request(
                method, f"{self.url}{path}", headers=headers, timeout=self.timeout_s, **kwargs
            )
        except httpx.HTTPError as exc:  # the text could quote headers: name the kind only
            raise AdminClientError(
                f"cannot reach the admin API at {self.url} ({type(exc).__name__}): is the "
                "gateway running? `make demo` or `servegate gateway start` starts it; "
                "--admin-url (SERVEGATE_ADMIN_URL) points at another one"
            ) from None
        if resp.status_code >= 400:
            try:
                message = resp.json().get("error", resp.text)
            except ValueError:
                message = resp.text
            raise AdminClientError(f"HTTP {resp.status_code}: {message}")
        return resp

    def routes(self) -> dict[str, Any]:
        body: dict[str, Any] = self._call("GET", "/admin/routes").json()
        return body

    def set_weights(self, route: str, weights: dict[str, int]) -> dict[str, Any]:
        version = self._call("GET", f"/admin/routes/{route}").json()["version"]
        resp = self._call(
            "PUT",
            f"/admin/routes/{route}/weights",
            json={"weights": weights},
            headers={"If-Match": f'"{version}"'},
        )
        body: dict[str, Any] = resp.json()
        return body

    def route(self, route: str) -> dict[str, Any]:
        """``{"version": ..., "route": {...}}``: one route as the config holds it."""
        body: dict[str, Any] = self._call("GET", f"/admin/routes/{route}").json()
        return body

    def set_variant(
        self, route: str, variant: str, fields: dict[str, str | int], reason: str = ""
    ) -> dict[str, Any]:
        """Point ``variant`` at another backend/model/version and/or weight (audited)."""
        version = self.route(route)["version"]
        resp = self._call(
            "PUT",
            f"/admin/routes/{route}/variants/{variant}",
            json={**fields, **({"reason": reason} if reason else {})},
            headers={"If-Match": f'"{version}"'},
        )
        body: dict[str, Any] = resp.json()
        return body

    def canary(self, route: str, action: str | None = None) -> dict[str, Any]:
        """The route's analysis status, after ``action`` (start, pause, ...) when given."""
        if action is None:
            resp = self._call("GET", f"/admin/canary/{route}")
        else:
            resp = self._call("POST", f"/admin/canary/{route}/{action}")
        body: dict[str, Any] = resp.json()
        return body


def _actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "cli"
