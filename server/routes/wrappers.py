"""Native wrapper API: list, describe, invoke, batch."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import to_json

from server.http.bodies import body_openapi, parse_body
from server.http.middleware.auth import caller_digest, check_wrapper_allowed, visible_wrapper
from server.invocation.service import Invocation, InvokeOptions, WrapperService
from server.releases.channels import ROUTE_KEY_HEADER
from server.state import ServerState, get_state
from wrappers.base import Wrapper

__all__ = ["router"]

router = APIRouter(prefix="/v1/wrappers", tags=["wrappers"])


class InvokeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: Any = Field(description="The wrapper's input object.")
    version: str | None = Field(default=None, description="'1', '1.2' or '1.2.0'; latest if omitted.")
    options: InvokeOptions | None = None


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    inputs: list[Any] = Field(min_length=1)
    version: str | None = None
    options: InvokeOptions | None = None


def describe(wrapper: type[Wrapper]) -> dict[str, Any]:
    return {
        "name": wrapper.name,
        "version": wrapper.version,
        "task": wrapper.task,
        "description": wrapper.description,
        "fingerprint": wrapper.fingerprint(),
        "input_schema": wrapper.Input.model_json_schema(by_alias=True),
        "output_schema": wrapper.static_schema() or wrapper.Output.model_json_schema(),
        "output_schema_rule": wrapper.schema_rule() or None,
        "examples": [example.model_dump() for example in wrapper.examples],
        "evals": wrapper.eval_spec().model_dump(mode="json", exclude={"sets"}),
    }


async def _service(state: Annotated[ServerState, Depends(get_state)]) -> WrapperService:
    return state.wrappers


Service = Annotated[WrapperService, Depends(_service)]


@router.get("")
async def list_wrappers(service: Service, request: Request) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {
                **describe(service.registry.versions(name)[0]),
                "versions": [w.version for w in service.registry.versions(name)],
            }
            for name in service.registry.names()
            if visible_wrapper(request, name)  # a narrow key sees only its own wrappers
        ],
    }


@router.get("/{name}")
async def get_wrapper(
    name: str, service: Service, request: Request, version: str | None = None
) -> dict[str, Any]:
    check_wrapper_allowed(request, name.partition("@")[0])
    # A channel names the version it serves now; a split, the one this caller's route key gets.
    wrapper, route = service.route(name, version, request.headers.get(ROUTE_KEY_HEADER))
    return {
        **describe(wrapper),
        "versions": [w.version for w in service.registry.versions(wrapper.name)],
        **({"channel": route.channel} if route.channel else {}),
        **({"split": route.split} if route.split else {}),
    }


@router.post("/{name}/invoke", response_model=None, openapi_extra=body_openapi(InvokeRequest))
async def invoke(name: str, request: Request) -> Response:
    # The hot route: the body decoded and validated in one pass (server/http/bodies.py), the
    # service read off the request rather than through two dependencies, and the answer
    # (plain JSON already) sent as it is, not validated against ``dict`` and walked by
    # jsonable_encoder first (benchmarks/RESULTS.md, "API-process CPU per call").
    body = parse_body(InvokeRequest, await request.body(), request.headers.get("content-type"))
    service = request.app.state.wrapserve.wrappers
    check_wrapper_allowed(request, name.partition("@")[0])
    wrapper, route = service.route(name, body.version, request.headers.get(ROUTE_KEY_HEADER))
    invocation = await service.invoke_routed(
        wrapper, route, body.input, body.options, owner=caller_digest(request)
    )
    # pydantic-core's encoder, as FastAPI's response pass used: non-finite floats become null.
    return Response(to_json(invocation.as_json(), inf_nan_mode="null"), media_type="application/json")


@router.post("/{name}/batch")
async def batch(name: str, body: BatchRequest, service: Service, request: Request) -> dict[str, Any]:
    check_wrapper_allowed(request, name.partition("@")[0])
    wrapper, route = service.route(name, body.version, request.headers.get(ROUTE_KEY_HEADER))
    results = await service.invoke_many(wrapper, body.inputs, body.options, route)
    items: list[dict[str, Any]] = []
    for index, result in enumerate(results):
        if isinstance(result, Invocation):
            items.append({"index": index, **result.as_json()})
        else:
            error = {
                "message": result.message,
                "type": result.type,
                "code": result.code,
                "param": result.param,
            }
            error.update({k: v for k, v in result.details.items() if v is not None})
            items.append({"index": index, "error": error, "status": result.status})
    return {
        "object": "wrapper.batch",
        "wrapper": wrapper.name,
        "version": wrapper.version,
        **({"channel": route.channel} if route.channel else {}),
        "results": items,
        "succeeded": sum(1 for item in items if "error" not in item),
        "failed": sum(1 for item in items if "error" in item),
    }
