"""Installs the cross-cutting defences on an app: auth, body bound, disconnects, metrics.

Middleware order, outermost first: observe (request id, access log, metrics) -> API key
-> body size -> client disconnect -> the routes. All are pure ASGI, so they cover every
route, including ones added later, and streaming responses.
"""

from __future__ import annotations

from fastapi import FastAPI

from server.http.metrics import Metrics
from server.http.metrics import router as metrics_router
from server.http.middleware.auth import ApiKeyMiddleware, KeyRing
from server.http.middleware.body_limit import BodyLimitMiddleware
from server.http.middleware.disconnect import DisconnectMiddleware
from server.http.middleware.observe import ObserveMiddleware
from server.state import ServerState

__all__ = ["install_guards"]


def install_guards(app: FastAPI, state: ServerState, metrics: Metrics) -> None:
    settings = state.settings
    keys = KeyRing.from_settings(settings)
    app.state.metrics = metrics
    app.state.keys = keys
    app.include_router(metrics_router)
    app.add_middleware(DisconnectMiddleware)
    app.add_middleware(BodyLimitMiddleware, limits=settings.limits)
    app.add_middleware(ApiKeyMiddleware, keys=keys)
    app.add_middleware(ObserveMiddleware, metrics=metrics, known_wrapper=lambda name: name in state.registry)
