"""Typed Python client for a Wrapserve server (httpx): call wrappers by class, get typed answers.

``client.call(Sentiment, text="...")`` sends the wrapper's name and exact version, so the
server runs the same definition the caller holds, and returns a ``Sentiment.Output``.
Server errors are raised as ``WrapperCallError`` (status, code, message, raw output);
in a batch they stand in place of the failed item's answer, order kept.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self

import httpx

from wrappers.base import Wrapper
from wrappers.errors import WrapserveError

__all__ = ["AsyncWrapserveClient", "ServerUnreachable", "WrapperCallError", "WrapserveClient"]

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT_S = 300.0


class WrapperCallError(WrapserveError):
    """The server answered with an error; ``status``/``code`` are the server's own."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: str,
        type: str = "server_error",
        param: str | None = None,
        raw_output: str | None = None,
        **details: Any,
    ) -> None:
        super().__init__(message, param=param, raw_output=raw_output, **details)
        self.status = status  # type: ignore[misc]
        self.code = code  # type: ignore[misc]
        self.type = type  # type: ignore[misc]
        self.retryable = status in (429, 503)  # type: ignore[misc]
        self.raw_output = raw_output

    def __str__(self) -> str:
        return f"{self.message} ({self.status} {self.code})"

    @classmethod
    def from_body(cls, status: int, body: Any) -> WrapperCallError:
        """Build from an ``{"error": {message, type, param, code, ...}}`` body (or anything else)."""
        error = body.get("error") if isinstance(body, dict) else None
        if not isinstance(error, dict):
            text = body if isinstance(body, str) else repr(body)
            return cls(f"HTTP {status}: {text[:500]}", status=status, code="http_error")
        fields = {key: value for key, value in error.items() if key != "status"}
        message = str(fields.pop("message", f"HTTP {status}"))
        code = str(fields.pop("code", None) or "error")
        type_ = str(fields.pop("type", None) or "server_error")
        param = fields.pop("param", None)
        raw_output = fields.pop("raw_output", None)
        return cls(
            message, status=status, code=code, type=type_, param=param, raw_output=raw_output, **fields
        )


class ServerUnreachable(WrapserveError):
    """No answer from the server at all (connection refused, timeout, broken connection)."""

    status = 503
    code = "server_unreachable"
    type = "connection_error"
    retryable = True


# -- request building and answer parsing, shared by both clients -----------------------------


def _headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def _body(
    input: Any, version: str | None, options: dict[str, Any] | None, key: str = "input"
) -> dict[str, Any]:
    body: dict[str, Any] = {key: input}
    if version is not None:
        body["version"] = version
    if options:
        body["options"] = options
    return body


def _json(response: httpx.Response) -> Any:
    try:
        body = response.json()
    except ValueError:
        body = response.text
    if response.is_error:
        raise WrapperCallError.from_body(response.status_code, body)
    return body


def _typed(wrapper: type[Wrapper], answer: dict[str, Any]) -> Any:
    return wrapper.Output.model_validate(answer["output"])


def _typed_batch(wrapper: type[Wrapper], answer: dict[str, Any]) -> list[Any]:
    results: list[Any] = []
    for item in sorted(answer["results"], key=lambda item: item["index"]):
        if "error" in item:
            results.append(WrapperCallError.from_body(int(item.get("status", 500)), {"error": item["error"]}))
        else:
            results.append(wrapper.Output.model_validate(item["output"]))
    return results


def _unreachable(base_url: str, error: httpx.HTTPError) -> ServerUnreachable:
    return ServerUnreachable(f"cannot reach the server at {base_url}: {type(error).__name__}: {error}")


# -- the clients ----------------------------------------------------------------------------------


class WrapserveClient:
    """Synchronous client. Use as a context manager, or call ``close()``."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        api_key: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url, headers=_headers(api_key), timeout=timeout, transport=transport
        )

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            raise _unreachable(self.base_url, error) from error
        return _json(response)

    def call(self, wrapper: type[Wrapper], /, **input_fields: Any) -> Any:
        """Run ``wrapper`` at its own version; returns a ``wrapper.Output`` instance."""
        answer = self.call_raw(wrapper.name, input_fields, version=wrapper.version)
        return _typed(wrapper, answer)

    def call_raw(
        self,
        name: str,
        input: dict[str, Any],
        version: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The server's whole answer: output, wrapper, version, fingerprint, model, usage, ..."""
        result: dict[str, Any] = self._request(
            "POST", f"/v1/wrappers/{name}/invoke", json=_body(input, version, options)
        )
        return result

    def batch(
        self, wrapper: type[Wrapper], inputs: list[dict[str, Any]], options: dict[str, Any] | None = None
    ) -> list[Any]:
        """One ``wrapper.Output`` or ``WrapperCallError`` per input, in the inputs' order."""
        return _typed_batch(wrapper, self.batch_raw(wrapper.name, inputs, wrapper.version, options))

    def batch_raw(
        self,
        name: str,
        inputs: list[dict[str, Any]],
        version: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        result: dict[str, Any] = self._request(
            "POST", f"/v1/wrappers/{name}/batch", json=_body(inputs, version, options, key="inputs")
        )
        return result

    def wrappers(self) -> list[dict[str, Any]]:
        """Every served wrapper (latest version described, all versions listed)."""
        data: list[dict[str, Any]] = self._request("GET", "/v1/wrappers")["data"]
        return data

    def wrapper(self, name: str, version: str | None = None) -> dict[str, Any]:
        """One served wrapper: schemas, examples, fingerprint, versions."""
        params = {"version": version} if version else None
        result: dict[str, Any] = self._request("GET", f"/v1/wrappers/{name}", params=params)
        return result

    def model(self) -> str:
        """Id of the model the server runs."""
        return str(self._request("GET", "/v1/models")["data"][0]["id"])

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


class AsyncWrapserveClient:
    """The same calls as ``WrapserveClient``, awaitable (httpx.AsyncClient)."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        api_key: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers=_headers(api_key), timeout=timeout, transport=transport
        )

    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            raise _unreachable(self.base_url, error) from error
        return _json(response)

    async def call(self, wrapper: type[Wrapper], /, **input_fields: Any) -> Any:
        """Run ``wrapper`` at its own version; returns a ``wrapper.Output`` instance."""
        answer = await self.call_raw(wrapper.name, input_fields, version=wrapper.version)
        return _typed(wrapper, answer)

    async def call_raw(
        self,
        name: str,
        input: dict[str, Any],
        version: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        result: dict[str, Any] = await self._request(
            "POST", f"/v1/wrappers/{name}/invoke", json=_body(input, version, options)
        )
        return result

    async def batch(
        self, wrapper: type[Wrapper], inputs: list[dict[str, Any]], options: dict[str, Any] | None = None
    ) -> list[Any]:
        """One ``wrapper.Output`` or ``WrapperCallError`` per input, in the inputs' order."""
        answer = await self.batch_raw(wrapper.name, inputs, wrapper.version, options)
        return _typed_batch(wrapper, answer)

    async def batch_raw(
        self,
        name: str,
        inputs: list[dict[str, Any]],
        version: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        result: dict[str, Any] = await self._request(
            "POST", f"/v1/wrappers/{name}/batch", json=_body(inputs, version, options, key="inputs")
        )
        return result

    async def wrappers(self) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = (await self._request("GET", "/v1/wrappers"))["data"]
        return data

    async def wrapper(self, name: str, version: str | None = None) -> dict[str, Any]:
        params = {"version": version} if version else None
        result: dict[str, Any] = await self._request("GET", f"/v1/wrappers/{name}", params=params)
        return result

    async def model(self) -> str:
        return str((await self._request("GET", "/v1/models"))["data"][0]["id"])

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.aclose()
