"""Fast tests of the ASGI defences on a minimal app (no engine needed), over httpx's ASGI transport."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI, Request

from server.engine.admission import Admission
from server.http.errors import install_error_handlers
from server.http.middleware.auth import ApiKeyMiddleware, KeyRing, check_wrapper_allowed
from server.http.middleware.body_limit import BodyLimitMiddleware
from server.limits import Limits
from server.settings import Settings, hash_api_key
from wrappers.errors import Overloaded


def _app(keys: KeyRing, limits: Limits | None = None) -> FastAPI:
    app = FastAPI()
    app.state.keys = keys
    install_error_handlers(app)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/models")
    async def models() -> dict[str, str]:
        return {"object": "list"}

    @app.post("/v1/wrappers/{name}/invoke")
    async def invoke(name: str, request: Request) -> dict[str, int]:
        check_wrapper_allowed(request, name)
        return {"bytes": len(await request.body())}

    app.add_middleware(BodyLimitMiddleware, limits=limits or Limits())
    app.add_middleware(ApiKeyMiddleware, keys=keys)
    return app


def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


def _ring() -> KeyRing:
    # A comma-separated string, as WRAPSERVE_API_KEYS gives it: the validator splits it.
    settings = Settings(api_keys="alpha,beta", key_wrappers={"beta": ["sentiment"]})  # type: ignore[arg-type]
    return KeyRing.from_settings(settings)


async def test_no_keys_means_open() -> None:
    async with _client(_app(KeyRing([]))) as client:
        assert (await client.get("/v1/models")).status_code == 200


async def test_keys_required_everywhere_but_health() -> None:
    async with _client(_app(_ring())) as client:
        assert (await client.get("/health")).status_code == 200
        missing = await client.get("/v1/models")
        assert missing.status_code == 401
        assert missing.json()["error"]["type"] == "authentication_error"
        assert missing.headers["www-authenticate"] == "Bearer"
        wrong = await client.get("/v1/models", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert (await client.get("/v1/models", headers={"Authorization": "Bearer alpha"})).status_code == 200
        assert (await client.get("/v1/models", headers={"Authorization": "Basic alpha"})).status_code == 401


@pytest.mark.parametrize(
    "headers",
    [
        {"Host": "localhost/health"},
        {"Host": "127.0.0.1:8000/health?"},
        {"X-Forwarded-Host": "x/health", "X-Forwarded-Prefix": "/health"},
        {"X-Original-URL": "/health", "X-Rewrite-URL": "/health"},
        {"X-Forwarded-Uri": "/health", "Forwarded": "for=127.0.0.1;host=health"},
    ],
)
async def test_headers_cannot_move_a_request_into_the_public_set(headers: dict[str, str]) -> None:
    async with _client(_app(_ring())) as client:
        response = await client.get("/v1/models", headers=headers)
        assert response.status_code == 401


@pytest.mark.parametrize("path", ["/health/../v1/models", "/v1/models?/health", "/v1/models#/health"])
async def test_path_tricks_do_not_bypass(path: str) -> None:
    async with _client(_app(_ring())) as client:
        response = await client.get(path)
        assert response.status_code in (401, 404)


async def test_per_key_wrapper_allow_list() -> None:
    async with _client(_app(_ring())) as client:
        beta = {"Authorization": "Bearer beta"}
        assert (
            await client.post("/v1/wrappers/sentiment/invoke", headers=beta, content=b"{}")
        ).status_code == 200
        denied = await client.post("/v1/wrappers/extract/invoke", headers=beta, content=b"{}")
        assert denied.status_code == 403
        assert denied.json()["error"]["type"] == "permission_error"
        alpha = {"Authorization": "Bearer alpha"}  # not listed: every wrapper
        assert (
            await client.post("/v1/wrappers/extract/invoke", headers=alpha, content=b"{}")
        ).status_code == 200


async def test_allow_list_accepts_sha256_names() -> None:
    settings = Settings(api_keys=["k"], key_wrappers={f"sha256:{hash_api_key('k')}": ["classify"]})
    ring = KeyRing.from_settings(settings)
    assert ring.allows(ring.match("k"), "classify")
    assert not ring.allows(ring.match("k"), "extract")
    assert not ring.allows(None, "classify")


async def test_body_limit_by_content_length_and_by_stream() -> None:
    app = _app(KeyRing([]), Limits(max_body_bytes=1000))
    async with _client(app) as client:
        ok = await client.post("/v1/wrappers/x/invoke", content=b"a" * 1000)
        assert ok.status_code == 200
        declared = await client.post("/v1/wrappers/x/invoke", content=b"a" * 1001)
        assert declared.status_code == 413
        assert declared.json()["error"]["code"] == "request_too_large"

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
            for _ in range(50):
                yield b"a" * 100

        streamed = await client.post("/v1/wrappers/x/invoke", content=chunks())
        assert streamed.status_code == 413


async def test_admission_bounds_requests_and_tokens_and_always_releases() -> None:
    admission = Admission(Limits(max_queued_requests=2, max_queued_tokens=100))
    async with admission.admit(10), admission.admit(10):
        with pytest.raises(Overloaded) as raised:
            async with admission.admit(10):
                pass
        assert raised.value.retry_after_s >= 1
    assert (admission.requests, admission.tokens) == (0, 0)
    async with admission.admit(90):
        with pytest.raises(Overloaded):
            async with admission.admit(20):
                pass
    with pytest.raises(RuntimeError):
        async with admission.admit(5):
            raise RuntimeError("boom")
    assert (admission.requests, admission.tokens) == (0, 0)
    async with admission.admit(10_000):  # an idle server takes anything once
        pass


async def test_group_admission_covers_the_tasks_it_starts() -> None:
    admission = Admission(Limits(max_queued_requests=3, max_queued_tokens=1000))
    seen: list[int] = []

    async def item() -> None:
        async with admission.admit(10):
            seen.append(admission.requests)

    async with admission.admit_group(50, 3):
        await asyncio.gather(*(item() for _ in range(10)))
    assert seen == [3] * 10
    assert admission.requests == 0


def test_a_listed_key_reaches_the_raw_model_only_when_granted() -> None:
    settings = Settings(
        api_keys="open,narrow,granted",  # type: ignore[arg-type]  # split by the validator
        # The JSON form of KeyRights, as the environment gives it
        key_wrappers={"narrow": ["sentiment"], "granted": {"wrappers": ["sentiment"], "raw_model": True}},  # type: ignore[dict-item]
    )
    ring = KeyRing.from_settings(settings)
    assert ring.allows_raw_model(ring.match("open"))  # not listed: everything
    assert not ring.allows_raw_model(ring.match("narrow"))  # its wrappers only
    assert ring.allows_raw_model(ring.match("granted"))
    assert not ring.allows_raw_model(None)
    assert ring.allows(ring.match("granted"), "sentiment") and not ring.allows(
        ring.match("granted"), "extract"
    )
    assert KeyRing([]).allows_raw_model(None)  # no keys configured: one tenant
