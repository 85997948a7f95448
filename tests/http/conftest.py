"""The real app (routes, middleware, services, batch jobs) on the fake engine, in-process.

For tests of the HTTP shape only: what proves the engine and the grammar path is the
real-engine suite. The app runs its own lifespan (engine start, grammar warm-up)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import openai
import pytest

from models.manifest import ModelRegistry
from server.app import create_app
from server.engine.fake import FakeEngine
from server.settings import Settings

MODEL = "smollm2-135m-instruct"


@pytest.fixture(scope="module")
async def fake_http(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[httpx.AsyncClient]:
    home = Path(tmp_path_factory.mktemp("fake-home"))
    manifest = ModelRegistry.load().get(MODEL)

    async def start() -> FakeEngine:
        return FakeEngine(model_id=manifest.id, max_model_len=manifest.max_model_len)

    app = create_app(Settings(home=home), manifest, start)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://fake", timeout=60) as client:
            for _ in range(3000):  # warm-up compiles every catalogue grammar first
                if (await client.get("/health")).status_code == 200:
                    break
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError("the app on the fake engine never became ready")
            yield client


@pytest.fixture(scope="module")
async def fake_openai(fake_http: httpx.AsyncClient) -> AsyncIterator[openai.AsyncOpenAI]:
    # The SDK accepts an httpx client as well as its own httpx2 one (it checks for either),
    # but its annotation names only httpx2's.
    async with openai.AsyncOpenAI(
        base_url="http://fake/v1",
        api_key="unused",
        http_client=fake_http,  # type: ignore[arg-type]
        max_retries=0,
    ) as client:
        yield client
