"""Job-step retries: throttling and dropped connections are retried with backoff, real errors are not."""
from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from jpegshrink_storage.jobs.retry import is_transient, with_retries


def _client_error(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "PutObject")


@pytest.mark.parametrize("exc, transient", [
    (_client_error("SlowDown", 503), True),
    (_client_error("Throttling", 400), True),
    (_client_error("InternalError", 500), True),
    (EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), True),
    (_client_error("NoSuchKey", 404), False),
    (_client_error("AccessDenied", 403), False),
    (_client_error("PreconditionFailed", 412), False),
    (ValueError("bug"), False),
])
def test_what_is_transient(exc, transient):
    assert is_transient(exc) is transient


def test_retries_until_success_then_gives_up_on_budget():
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise _client_error("SlowDown", 503)
        return "ok"

    assert with_retries(flaky, budget_s=5, first_delay_s=0.01) == "ok" and len(calls) == 3

    def down():
        raise EndpointConnectionError(endpoint_url="http://127.0.0.1:1")

    with pytest.raises(EndpointConnectionError):
        with_retries(down, budget_s=0.05, first_delay_s=0.01)
    calls.clear()

    def denied():
        calls.append(1)
        raise _client_error("AccessDenied", 403)

    with pytest.raises(ClientError):
        with_retries(denied, budget_s=5, first_delay_s=0.01)
    assert len(calls) == 1
