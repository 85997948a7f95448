"""The typed client against the real server: typed answers, async, batch, typed errors."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import RunningServer
from wrappers import AsyncWrapserveClient, ServerUnreachable, WrapperCallError, WrapserveClient
from wrappers.catalogue.classify import Sentiment

LABELS = {"positive", "negative", "neutral"}


@pytest.fixture(scope="module")
def client(server: RunningServer) -> Iterator[WrapserveClient]:
    with WrapserveClient(server.base_url) as client:
        yield client


def test_call_returns_the_wrappers_output_type(client: WrapserveClient) -> None:
    answer = client.call(Sentiment, text="I love this phone, the battery lasts for days!")
    assert isinstance(answer, Sentiment.Output)
    assert answer.label in LABELS


def test_call_raw_pins_the_class_version_and_reports_it(client: WrapserveClient) -> None:
    body = client.call_raw(
        "sentiment", {"text": "Fine."}, version=Sentiment.version, options={"max_tokens": 16}
    )
    assert body["version"] == Sentiment.version
    assert body["fingerprint"] == Sentiment.fingerprint()
    assert body["output"]["label"] in LABELS


async def test_async_call_and_batch(server: RunningServer) -> None:
    async with AsyncWrapserveClient(server.base_url) as client:
        answer = await client.call(Sentiment, text="Terrible service, nobody helped me.")
        results = await client.batch(Sentiment, [{"text": "Great!"}, {"text": "Awful."}])
    assert isinstance(answer, Sentiment.Output) and answer.label in LABELS
    assert all(isinstance(result, Sentiment.Output) for result in results)


def test_batch_keeps_order_and_puts_errors_in_place(client: WrapserveClient) -> None:
    results = client.batch(
        Sentiment, [{"text": "Wonderful, thank you!"}, {"text": ""}, {"text": "This is awful."}]
    )
    assert len(results) == 3
    assert isinstance(results[0], Sentiment.Output) and isinstance(results[2], Sentiment.Output)
    error = results[1]
    assert isinstance(error, WrapperCallError)
    assert (error.status, error.code, error.param) == (422, "invalid_input", "input.text")


def test_unknown_wrapper_raises_the_typed_error(client: WrapserveClient) -> None:
    with pytest.raises(WrapperCallError) as caught:
        client.call_raw("no-such-wrapper", {"text": "x"})
    assert caught.value.status == 404
    assert caught.value.code == "wrapper_not_found"
    assert "no-such-wrapper" in caught.value.message


def test_invalid_output_keeps_the_raw_text(client: WrapserveClient) -> None:
    schema = {
        "type": "object",
        "properties": {"summary": {"type": "string", "minLength": 40}},
        "required": ["summary"],
    }
    with pytest.raises(WrapperCallError) as caught:
        client.call_raw("extract", {"text": "A long story.", "schema": schema}, options={"max_tokens": 4})
    assert (caught.value.status, caught.value.code) == (502, "output_truncated")
    assert caught.value.raw_output is not None and caught.value.raw_output.startswith('{"summary":')


def test_listing_and_description(client: WrapserveClient) -> None:
    names = {item["name"] for item in client.wrappers()}
    assert {"sentiment", "ticket-priority"} <= names
    described = client.wrapper("sentiment")
    assert described["version"] == Sentiment.version and described["examples"]
    assert client.model() == "smollm2-135m-instruct"


def test_api_key_is_sent_as_a_bearer_token() -> None:
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        return httpx.Response(
            401,
            json={"error": {"message": "bad key", "type": "authentication_error", "code": "invalid_api_key"}},
        )

    transport = httpx.MockTransport(handler)
    with (
        WrapserveClient("http://wrapserve.test", api_key="sk-123", transport=transport) as client,
        pytest.raises(WrapperCallError) as caught,
    ):
        client.wrappers()
    assert seen == ["Bearer sk-123"]
    assert (caught.value.status, caught.value.code) == (401, "invalid_api_key")


def test_no_server_is_a_typed_error() -> None:
    with WrapserveClient("http://127.0.0.1:9", timeout=5) as client, pytest.raises(ServerUnreachable):
        client.wrappers()
