"""What the running server knows: settings, the model, the engine and its phase.

One ``ServerState`` per app, created by ``create_app`` and reached by routes through
``request.app.state.wrapserve``; nothing lives at module level.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from fastapi import Request

from models.manifest import ModelManifest
from server.engine.admission import Admission
from server.engine.protocol import Engine
from server.invocation.decoding import DecodeSettings
from server.invocation.service import WrapperService
from server.lifecycle import Lifecycle, Phase
from server.releases.channels import Releases
from server.releases.shadow import ShadowRunner, ShadowStore
from server.settings import Settings
from server.structured.grammar import GrammarCompiler
from wrappers.errors import EngineUnavailable
from wrappers.registry import WrapperRegistry

__all__ = ["EngineFactory", "ServerState", "get_state"]

EngineFactory = Callable[[], Awaitable[Engine]]


@dataclass
class ServerState:
    settings: Settings
    manifest: ModelManifest
    engine_factory: EngineFactory
    registry: WrapperRegistry
    grammars: GrammarCompiler
    admission: Admission
    engine: Engine | None = None
    lifecycle: Lifecycle = field(default_factory=Lifecycle)
    wrappers: WrapperService = field(init=False)
    releases: Releases = field(init=False)
    shadow: ShadowRunner = field(init=False)

    def __post_init__(self) -> None:
        self.releases = Releases(self.settings.releases_file, self.registry)
        self.shadow = ShadowRunner(ShadowStore(self.settings.state_db), self.settings.shadow_max_in_flight)
        self.wrappers = WrapperService(
            self.registry,
            self.grammars,
            self.require_engine,
            self.settings.limits,
            DecodeSettings(
                self.settings.forced_prefix, self.settings.choice_scoring, self.settings.align_prefix
            ),
            admission=self.admission,
            releases=self.releases,
            shadow=self.shadow,
        )

    @property
    def phase(self) -> Phase:
        return self.lifecycle.phase

    @property
    def failure(self) -> str | None:
        return self.lifecycle.failure

    def require_engine(self) -> Engine:
        """The engine, or a 503 that says why it cannot take work right now."""
        # Draining: requests already in flight finish; the socket takes no new ones.
        if self.phase in ("ready", "draining") and self.engine is not None:
            return self.engine
        reasons = {
            "starting": "the server is starting; retry shortly",
            "warming": "the server is compiling grammars; retry shortly",
            "draining": "the server is shutting down",
            "failed": f"the engine failed: {self.failure}",
            "stopped": "the server has stopped",
        }
        raise EngineUnavailable(reasons.get(self.phase, "the engine is not ready"))


async def get_state(request: Request) -> ServerState:
    # async, as every dependency here: FastAPI runs a plain ``def`` dependency in its
    # thread pool, a thread hop on each request for what is an attribute read.
    state: ServerState = request.app.state.wrapserve
    return state
