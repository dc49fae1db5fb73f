"""Everything the sync and async clients share: configuration, request building, response
parsing, error mapping and the retry policy (the calls themselves are in `_calls.py`). The two
clients only add I/O."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from typing import Any, TypeVar
from uuid import UUID

import httpx
import tenacity
from tenacity.wait import wait_exponential_jitter

from cards_client._calls import Call, Safety
from cards_client._exceptions import APIError, error_for

__version__ = "1.0.0"

DEFAULT_URL = "http://127.0.0.1:8002"
DEFAULT_TIMEOUT = 10.0
DEFAULT_MAX_RETRIES = 6
RETRY_STATUSES = frozenset({502, 503, 504})

T = TypeVar("T")


def _env(name: str) -> str | None:
    value = os.environ.get(name)
    return value if value else None


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers["Retry-After"])
    except (KeyError, ValueError):
        return None


class BaseClient:
    """Configuration and all non-I/O logic of `CardsClient` and `AsyncCardsClient`."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        tenant_id: str | UUID | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        backoff: float = 0.25,
        max_backoff: float = 8.0,
    ) -> None:
        """Arguments win over the environment (`CARDS_URL`, `CARDS_API_KEY`, `CARDS_TENANT_ID`)."""
        self.base_url = (base_url or _env("CARDS_URL") or DEFAULT_URL).rstrip("/")
        self.api_key = api_key or _env("CARDS_API_KEY")
        tenant = tenant_id or _env("CARDS_TENANT_ID")
        self.tenant_id = UUID(str(tenant)) if tenant is not None else None
        self.timeout = timeout
        if max_retries < 0:
            raise ValueError("max_retries must be 0 or more")
        self.max_retries = max_retries
        # backoff, 2 x backoff, 4 x backoff … up to max_backoff, each plus up to `backoff` of
        # random jitter so that many clients retrying at once do not arrive in step.
        self._wait_backoff = wait_exponential_jitter(
            multiplier=backoff, max=max_backoff, jitter=backoff
        )

    # -- retry policy ------------------------------------------------------------------------

    def _retryable(self, call: Call[Any]) -> Callable[[BaseException], bool]:
        def retryable(exc: BaseException) -> bool:
            if isinstance(exc, httpx.TransportError):
                return call.safety is Safety.REPEATABLE or isinstance(exc, httpx.ConnectError)
            if isinstance(exc, APIError):
                if call.safety is Safety.ONCE:
                    return exc.status == 503
                in_progress = exc.status == 409 and exc.type.endswith("/request-in-progress")
                return exc.status in RETRY_STATUSES or in_progress
            return False

        return retryable

    def _wait(self, state: tenacity.RetryCallState) -> float:
        """Exponential backoff with jitter, but never sooner than the server's Retry-After."""
        delay = float(self._wait_backoff(state))
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, APIError) and exc.retry_after is not None:
            delay = max(delay, exc.retry_after)
        return delay

    def _retry_options(self, call: Call[Any]) -> dict[str, Any]:
        return {
            "stop": tenacity.stop_after_attempt(self.max_retries + 1 if call.retry else 1),
            "wait": self._wait,
            "retry": tenacity.retry_if_exception(self._retryable(call)),
            "reraise": True,
        }

    # -- requests and responses ---------------------------------------------------------------

    def _request(
        self, http: httpx.Client | httpx.AsyncClient, call: Call[Any], trace_id: str
    ) -> httpx.Request:
        headers = {"X-Trace-ID": trace_id, "Accept": "application/json", **call.headers}
        if call.tenant:
            if self.tenant_id is None:
                raise ValueError("a tenant id is required: pass tenant_id= or set CARDS_TENANT_ID")
            headers["X-Tenant-ID"] = str(self.tenant_id)
            if self.api_key:
                headers["Authorization"] = f"Bearer {self.api_key}"
        params = {k: v for k, v in (call.params or {}).items() if v is not None}
        return http.build_request(
            call.method, call.path, params=params, json=call.json, headers=headers
        )

    @staticmethod
    def _checked(response: httpx.Response, trace_id: str) -> httpx.Response:
        if response.status_code < 400:
            return response
        try:
            problem = response.json()
        except ValueError:
            problem = {}
        if not isinstance(problem, dict):
            problem = {}
        error = error_for(
            response.status_code,
            problem,
            trace_id=response.headers.get("X-Trace-ID", trace_id),
        )
        error.retry_after = _retry_after(response)
        raise error

    @staticmethod
    def _new_trace_id() -> str:
        return uuid.uuid4().hex
