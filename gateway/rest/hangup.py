"""A client that hangs up cancels its request, as in nginx (``proxy_ignore_client_abort off``)
and Envoy: the upstream call is abandoned (counted 499), and a generation is told to stop
(``gateway.cancel``).

uvicorn only marks a request whose connection was lost and leaves its task running to the
end, so the listener (``gateway.listener``) cancels it through ``hung_up``, and
``CancelOnHangup``, the outermost layer of the data app, ends the cancelled task quietly:
there is nobody left to answer. Any other cancellation (a drain's deadline) goes on as it was.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

TASK = "servegate.task"  # the task serving the request (scope key)
HUNG_UP = "servegate.hung_up"  # set when its client's connection was lost first


class CancelOnHangup:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        task = scope[TASK] = asyncio.current_task()
        try:
            await self.app(scope, receive, send)
        except asyncio.CancelledError:
            if not scope.get(HUNG_UP) or task is None:
                raise
            task.uncancel()  # this cancellation was ours, and it has done its work


def hung_up(scope: dict[str, Any]) -> None:
    """Called by the listener when the connection of a request still in progress is lost."""
    task = scope.get(TASK)
    if isinstance(task, asyncio.Task) and not task.done():
        scope[HUNG_UP] = True
        task.cancel()
