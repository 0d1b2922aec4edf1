"""Audit ``ListEvents`` for one (region, compartment, window), page by page, retried, filtered.

* **Paging.** ``opc-next-page`` is followed until absent; :meth:`AuditSource.pages` yields one page at a
  time (a page can hold ~20,000 events; a window's million events are never in memory together).
* **Raw events.** The generated ``AuditClient.list_events`` turns every event into SDK model objects,
  which is slow at ~20,000 events a page and drops any field the model does not know. The same
  request is made here through the client's own ``base_client.call_api`` (same signer, endpoint,
  timeouts, breaker; the SDK's ``bytes`` response type) and the page is parsed with orjson: each event
  is the dict of the wire JSON (camelCase keys, ``eventId``, ``data.identity.credentials``, …), which
  is what the events stream carries and what redaction and the formats work on.
* **Retries.** ``ListEvents`` has no SDK default retry; the factory's client-level strategy for Audit
  (429, 5xx but 501, timeouts, connection errors; exponential backoff with jitter, one wait capped at
  60 s) is used with its total time capped at ``retry_total_seconds`` (default 60 s) per page. Past
  that the error is raised: the window is not done and its watermark does not move.
* **Window.** ``[start, end)`` on minute boundaries, as the API demands (seconds must be 0); sent as
  ``2026-03-02T10:15:00Z``.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import logging
from collections.abc import Iterable, Iterator
from typing import Any, Final

import oci
import orjson

from siem_pipeline.oci_clients import OciClientFactory, RetryPolicy
from siem_pipeline.windows import Window, format_time

log = logging.getLogger(__name__)

RESOURCE_PATH: Final = "/auditEvents"
DEFAULT_RETRY_TOTAL_SECONDS: Final = 60.0


@dataclasses.dataclass(frozen=True)
class EventTypeFilter:
    """Keep events whose ``eventType`` matches an ``include`` pattern (all when empty) and no ``exclude``
    pattern; patterns are shell globs, case-insensitive (``com.oraclecloud.identityControlPlane.*``)."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "include", tuple(p.strip().lower() for p in self.include if p.strip()))
        object.__setattr__(self, "exclude", tuple(p.strip().lower() for p in self.exclude if p.strip()))

    @property
    def active(self) -> bool:
        return bool(self.include or self.exclude)

    def matches(self, event: dict[str, Any]) -> bool:
        event_type = str(event.get("eventType") or "").lower()
        if self.include and not any(fnmatch.fnmatchcase(event_type, p) for p in self.include):
            return False
        return not any(fnmatch.fnmatchcase(event_type, p) for p in self.exclude)

    def apply(self, events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        return list(events) if not self.active else [e for e in events if self.matches(e)]


class AuditSource:
    """Reads Audit events through the factory's Audit clients (one per region)."""

    def __init__(self, factory: OciClientFactory, *,
                 retry_total_seconds: float = DEFAULT_RETRY_TOTAL_SECONDS) -> None:
        self.factory = factory
        policy = factory.settings.retry_for("audit")
        #: the factory's Audit policy, its total time per page capped
        self.retry_policy: RetryPolicy = policy.model_copy(
            update={"total_elapsed_seconds": min(policy.total_elapsed_seconds, retry_total_seconds)})
        self.pages_read = 0

    def pages(self, region: str, compartment_id: str, window: Window) -> Iterator[list[dict[str, Any]]]:
        """Every event of the compartment processed in ``window``, one page at a time (empty pages skipped)."""
        client = self.factory.audit(region)
        page: str | None = None
        while True:
            response = self._call(client, compartment_id, window, page)
            self.pages_read += 1
            events = orjson.loads(response.data) if response.data else []
            if not isinstance(events, list):
                raise ValueError(f"Audit ListEvents in {region} answered a {type(events).__name__}, not a list")
            if events:
                yield events
            page = response.headers.get("opc-next-page")
            if not page:
                return

    def events(self, region: str, compartment_id: str, window: Window) -> Iterator[dict[str, Any]]:
        for page in self.pages(region, compartment_id, window):
            yield from page

    def _call(self, client: Any, compartment_id: str, window: Window, page: str | None) -> Any:
        query = {"compartmentId": compartment_id, "startTime": format_time(window.start),
                 "endTime": format_time(window.end)}
        if page:
            query["page"] = page
        headers = {"accept": "application/json", "content-type": "application/json"}
        strategy = self.retry_policy.build()
        kwargs: dict[str, Any] = {
            "resource_path": RESOURCE_PATH, "method": "GET", "query_params": query, "header_params": headers,
            "response_type": "bytes", "operation_name": "list_events",
            "api_reference_link": "https://docs.oracle.com/iaas/api/#/en/audit/20190901/AuditEvent/ListEvents",
            "required_arguments": ["compartmentId", "startTime", "endTime"],
        }
        if isinstance(strategy, oci.retry.NoneRetryStrategy):
            return client.base_client.call_api(**kwargs)
        client.base_client.add_opc_client_retries_header(headers)
        strategy.add_circuit_breaker_callback(client.circuit_breaker_callback)
        return strategy.make_retrying_call(client.base_client.call_api, **kwargs)
