"""Job-step retries on top of botocore's: ride out throttling, dropped connections and a server restart.

botocore retries each request a few times within seconds; a job step (read, write, read back) is
retried here with exponential backoff and jitter for a longer, bounded time, because a restarted server
or a throttled bucket needs tens of seconds, not milliseconds. Only errors that can go away are retried.
"""
from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

_TRANSIENT_CODES = {
    "Throttling", "ThrottlingException", "SlowDown", "RequestTimeout", "RequestTimeTooSkewed",
    "InternalError", "ServiceUnavailable", "RequestLimitExceeded", "TooManyRequests", "OperationAborted",
}


def is_transient(exc: BaseException) -> bool:
    """True for errors that a later attempt can succeed after: throttling, 5xx, network trouble.

    botocore and urllib3 are looked at only when already imported (by the S3 store): an error cannot
    be one of theirs otherwise, and local jobs must run without them."""
    if isinstance(exc, (ConnectionResetError, TimeoutError)):
        return True
    boto = sys.modules.get("botocore.exceptions")
    if boto is not None:
        if isinstance(exc, boto.ClientError):
            code = exc.response.get("Error", {}).get("Code", "")
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            return code in _TRANSIENT_CODES or status >= 500 or status == 429
        if isinstance(exc, (boto.ConnectionError, boto.HTTPClientError, boto.ResponseStreamingError)):
            return True
    urllib3 = sys.modules.get("urllib3.exceptions")
    return urllib3 is not None and isinstance(exc, urllib3.HTTPError)


def with_retries(step: Callable[[], T], *, budget_s: float, first_delay_s: float = 0.25,
                 max_delay_s: float = 4.0) -> T:
    """Run ``step`` until it succeeds, retrying transient errors for at most ``budget_s`` seconds."""
    deadline = time.monotonic() + budget_s
    delay = first_delay_s
    while True:
        try:
            return step()
        except Exception as e:
            if not is_transient(e) or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay * (0.5 + random.random() / 2))
        delay = min(delay * 2, max_delay_s)
