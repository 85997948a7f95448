"""The one typed settings object: built once from env (WRAPSERVE_*) and CLI flags, passed in."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from server.limits import Limits

__all__ = ["KeyRights", "Settings", "hash_api_key"]

DEFAULT_MODEL = "smollm2-135m-instruct"


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class KeyRights(BaseModel):
    """What a listed API key may do: these wrappers, and the raw model only if granted."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    wrappers: list[str] = Field(default_factory=list)
    raw_model: bool = False


class Settings(BaseSettings):
    """Every knob of the server. Env prefix ``WRAPSERVE_``; CLI flags override."""

    model_config = SettingsConfigDict(env_prefix="WRAPSERVE_", env_nested_delimiter="__", extra="ignore")

    # Network
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)

    # Model and where state lives
    model: str = DEFAULT_MODEL
    home: Path = Field(default_factory=lambda: Path.home() / ".cache" / "wrapserve")
    weights_dir: Path | None = None  # converted/copied weights; default HOME/models
    models_dir: Path | None = None  # extra model manifests (TOML)
    wrappers_dir: Path | None = None
    # Release channels, splits, shadows and calibrations (server/releases/config.py); read at
    # start and on SIGHUP. Absent file: no channels.
    releases_file: Path | None = None
    # Where files, batches and their results live: unset, the SQLite file HOME/wrapserve.sqlite3;
    # postgresql://USER:PASS@HOST:PORT/DB for replicas that share them (server/storage/).
    database_url: SecretStr | None = None  # secret: it may hold the password
    # How long a runner holds a batch request it claimed without renewing (it renews every
    # third of it): how soon another replica takes over the requests of one that died.
    batch_lease_s: float = Field(default=30.0, ge=1.0, le=3600.0)
    # Shadow calls running at once, at most; more are dropped (and counted), never queued.
    shadow_max_in_flight: int = Field(default=2, ge=0, le=64)

    # HTTP processes feeding one engine core (vLLM's multi-API-server mechanism): the API
    # work of N calls spreads over N cores while the engine batches them all as one.
    api_workers: int = Field(default=1, ge=1, le=64)
    # Which of them this process is (set by the server for each worker it starts).
    api_worker_index: int = Field(default=0, ge=0)

    # Engine (passed to vLLM). None means "the engine's default for this device".
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # Weights' dtype; None: the manifest's (its cpu_dtype on a CPU without hardware bf16).
    dtype: Literal["bfloat16", "float16", "float32"] | None = None
    max_model_len: int | None = None
    gpu_memory_utilization: float | None = Field(default=None, gt=0, le=1)
    # KV cache size in GiB. On CPU it defaults to a fixed size: vLLM's share-of-node-RAM
    # reading varies with what else runs on the box, a fixed size does not.
    kv_cache_gib: float | None = Field(default=None, gt=0)
    # Tokens per KV cache block; also the prefix cache's unit (only whole blocks are shared).
    block_size: int | None = Field(default=None, gt=0)
    enforce_eager: bool | None = None
    max_num_seqs: int | None = Field(default=None, gt=0)
    engine_grammar_timeout_s: int = Field(default=30, gt=0)  # vLLM's grammar index budget
    structured_output_backend: Literal["outlines", "xgrammar", "guidance"] = "guidance"
    tensor_parallel_size: int = Field(default=1, ge=1)
    pipeline_parallel_size: int = Field(default=1, ge=1)
    data_parallel_size: int = Field(default=1, ge=1)
    distributed_executor_backend: Literal["mp", "ray", "uni"] | None = None
    load_format: Literal["auto", "safetensors", "dummy"] = "auto"

    # Wrapper-specific speed-ups (see server/invocation/decoding.py); on by default, off for comparisons.
    forced_prefix: bool = True  # a grammar's forced opening goes into the prompt, not decode steps
    choice_scoring: bool = True  # one-label outputs are scored from log-probs in one forward pass
    # A wrapper's system turn is padded so that the prefix its calls share (the turn, the user
    # turn's opening, the template's literal start) ends on a KV block: the cache serves all of it
    align_prefix: bool = True
    # Grammar masks on CPU logits applied in one vectorised pass instead of xgrammar's scalar
    # kernel (server/vllm/plugins/cpu_grammar_mask.py, a vLLM plugin; the engine passes this to vLLM's
    # processes as WRAPSERVE_FAST_CPU_MASKS)
    fast_cpu_masks: bool = True
    # Outlines guides advance a decode step without listing the next tokens, which vLLM
    # discards (server/vllm/plugins/grammar_advance.py, a vLLM plugin; exported as WRAPSERVE_FAST_GRAMMAR_ADVANCE)
    fast_grammar_advance: bool = True

    # Request bounds (WRAPSERVE_LIMITS__MAX_TOKENS=... etc.)
    limits: Limits = Field(default_factory=Limits)

    # Auth: keys are hashed as soon as they are read; the plain text is not kept.
    # WRAPSERVE_API_KEYS: a comma-separated list or a JSON list. See SECURITY.md.
    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Optional per-key rights, JSON {"<key>" or "sha256:<hex>": ["name", ...]} or
    # {"<key>": {"wrappers": [...], "raw_model": true}}: a listed key calls only its wrappers,
    # and the raw model (chat, completions, responses without a wrapper) only with
    # raw_model; a key not listed may do everything. Map keys are hashed on read too.
    key_wrappers: dict[str, list[str] | KeyRights] = Field(default_factory=dict)

    # SIGTERM: how long in-flight requests get to finish before they are cancelled.
    shutdown_timeout_s: int = Field(default=30, ge=0)

    # Logging
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_prompts: bool = False
    # vLLM's own output (and its workers'): a file, or "-" to keep it on the console.
    engine_log: str | None = None

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("key_wrappers", mode="after")
    @classmethod
    def _hash_key_names(cls, allow: dict[str, list[str] | KeyRights]) -> dict[str, list[str] | KeyRights]:
        return {
            name.removeprefix("sha256:") if name.startswith("sha256:") else hash_api_key(name): (
                rights if isinstance(rights, KeyRights) else KeyRights(wrappers=rights)
            )
            for name, rights in allow.items()
        }

    @field_validator("api_keys", mode="after")
    @classmethod
    def _hash_keys(cls, keys: list[str]) -> list[str]:
        return [hash_api_key(key) for key in keys if key]

    @property
    def weights_path(self) -> Path:
        return self.weights_dir or self.home / "models"

    @property
    def engine_log_path(self) -> Path | None:
        if self.engine_log == "-":
            return None
        return Path(self.engine_log) if self.engine_log else self.home / "logs" / "engine.log"

    @property
    def database(self) -> str | None:
        """The database URL to connect to (None: the SQLite file in ``home``)."""
        return self.database_url.get_secret_value() if self.database_url else None

    def for_api_worker(self, index: int) -> Settings:
        """This worker's settings: the admission and batch bounds are shared by all workers,
        so each gets its share, and together they hold the bounds as one process would."""
        count = self.api_workers
        limits = self.limits.model_copy(
            update={
                "max_queued_requests": max(1, self.limits.max_queued_requests // count),
                "max_queued_tokens": max(1, self.limits.max_queued_tokens // count),
                "max_batch_in_flight": max(1, self.limits.max_batch_in_flight // count),
            }
        )
        shadows = self.shadow_max_in_flight and max(1, self.shadow_max_in_flight // count)
        return self.model_copy(
            update={"api_worker_index": index, "limits": limits, "shadow_max_in_flight": shadows}
        )

    @property
    def state_db(self) -> Path:
        return self.home / "wrapserve.sqlite3"
