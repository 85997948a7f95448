"""API-key authentication as pure ASGI middleware, and the per-key wrapper allow-list.

Decisions use only ``scope["path"]`` (what the router will route), never the Host,
X-Forwarded-* or any URL rebuilt from headers, so no header can move a request into
the unauthenticated set. Keys are stored as SHA-256 digests and compared in constant
time. When no keys are configured, every request is let through (the default bind is
loopback only).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated

from fastapi import Depends
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from server.http.asgi import send_error
from server.settings import KeyRights, Settings
from wrappers.errors import Forbidden, Unauthorized

__all__ = [
    "KEY_SCOPE",
    "ApiKeyMiddleware",
    "Caller",
    "KeyRing",
    "caller_key",
    "check_raw_model_allowed",
    "check_wrapper_allowed",
    "visible_raw_model",
    "visible_wrapper",
]

# Where the middleware leaves the caller's key digest for routes to read.
KEY_SCOPE = "wrapserve.key"
PUBLIC_PATHS = frozenset({"/health"})


class KeyRing:
    """The configured key digests, their optional wrapper allow-lists, and which listed
    keys may also use the raw model."""

    def __init__(
        self,
        key_digests: Sequence[str],
        allow: Mapping[str, Iterable[str]] | None = None,
        raw_model: Iterable[str] = (),
    ) -> None:
        self._digests = tuple(key_digests)
        self._allow = {digest: frozenset(names) for digest, names in (allow or {}).items()}
        self._raw_model = frozenset(raw_model)

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyRing:
        rights = {
            digest: r if isinstance(r, KeyRights) else KeyRights(wrappers=r)
            for digest, r in settings.key_wrappers.items()
        }
        return cls(
            settings.api_keys,
            {digest: r.wrappers for digest, r in rights.items()},
            raw_model=[digest for digest, r in rights.items() if r.raw_model],
        )

    @property
    def enabled(self) -> bool:
        return bool(self._digests)

    def match(self, presented: str) -> str | None:
        """The digest of a valid key, else None. Every digest is compared, in constant time."""
        digest = hashlib.sha256(presented.encode("utf-8", "surrogatepass")).hexdigest()
        found = None
        for known in self._digests:
            if hmac.compare_digest(digest, known):
                found = known
        return found

    def allows(self, digest: str | None, wrapper: str) -> bool:
        if not self.enabled:
            return True
        if digest is None:
            return False
        names = self._allow.get(digest)
        return names is None or wrapper in names

    def allows_raw_model(self, digest: str | None) -> bool:
        """Free-form prompts to the model itself: every key not listed, listed ones if granted."""
        if not self.enabled:
            return True
        if digest is None:
            return False
        return digest not in self._allow or digest in self._raw_model


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            text = value.decode("latin-1").strip()
            scheme, _, token = text.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            return None
    return None


class ApiKeyMiddleware:
    """401 without a valid ``Authorization: Bearer <key>`` on every route but /health."""

    def __init__(self, app: ASGIApp, keys: KeyRing) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.keys.enabled:
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        token = _bearer(scope)
        digest = self.keys.match(token) if token is not None else None
        if digest is None and path not in PUBLIC_PATHS:
            message = (
                "invalid API key" if token is not None else "missing API key (Authorization: Bearer <key>)"
            )
            await send_error(send, Unauthorized(message), headers={"WWW-Authenticate": "Bearer"})
            return
        scope[KEY_SCOPE] = digest
        await self.app(scope, receive, send)


def _caller(request: Request) -> tuple[KeyRing | None, str | None]:
    keys: KeyRing | None = getattr(request.app.state, "keys", None)
    if keys is None or not keys.enabled:
        return None, None
    digest = request.scope.get(KEY_SCOPE)
    if digest is None and (token := _bearer(request.scope)) is not None:
        digest = keys.match(token)
    return keys, digest


def check_raw_model_allowed(request: Request) -> None:
    """Raise ``Forbidden`` unless the caller's key may prompt the model directly."""
    keys, digest = _caller(request)
    if keys is None or (digest is None and request.scope.get("wrapserve.internal")):
        return
    if not keys.allows_raw_model(digest):
        raise Forbidden(
            "this API key may call only its wrappers (model='wrapper:NAME'); the raw model is not "
            "granted to it (raw_model in WRAPSERVE_KEY_WRAPPERS)",
            param="model",
        )


def visible_wrapper(request: Request, wrapper: str) -> bool:
    """Whether the caller's key may see (and so call) this wrapper: listings hide the rest."""
    keys, digest = _caller(request)
    return keys is None or keys.allows(digest, wrapper)


def visible_raw_model(request: Request) -> bool:
    keys, digest = _caller(request)
    return keys is None or keys.allows_raw_model(digest)


def check_wrapper_allowed(request: Request, wrapper: str) -> None:
    """Raise ``Forbidden`` unless the caller's key may call this wrapper.

    Batch lines run in-process below the middleware and carry the creator's
    ``Authorization`` header when the dispatcher forwards it; it is checked here too.
    """
    keys, digest = _caller(request)
    if keys is None:
        return
    if digest is None and request.scope.get("wrapserve.internal"):
        return  # authenticated when the batch was created; no key to narrow by
    if not keys.allows(digest, wrapper):
        raise Forbidden(f"this API key may not call the wrapper {wrapper!r}", param="model")


def caller_digest(request: Request) -> str | None:
    """The caller's API key digest; None when no keys are configured (one tenant)."""
    digest: str | None = request.scope.get(KEY_SCOPE)
    return digest


async def caller_key(request: Request) -> str | None:
    return caller_digest(request)


# A route parameter: whose files and batches the caller may see.
Caller = Annotated[str | None, Depends(caller_key)]
