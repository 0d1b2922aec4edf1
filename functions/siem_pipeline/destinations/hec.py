"""Splunk HTTP Event Collector client: batches, gzip, verified TLS, the code table, indexer acks.

One :class:`HecClient` keeps one keep-alive ``httpx.Client``. :meth:`HecClient.send` takes a batch of
formatted envelopes (:class:`~siem_pipeline.formats.HecFormat`), posts them *concatenated* (``{…}\\n{…}``,
never a JSON array) in requests of at most ``max_batch_bytes`` (before compression) and
``max_batch_events``, gzipped by default, to ``/services/collector/event`` with
``Authorization: Splunk <token>`` and a per-client ``X-Splunk-Request-Channel`` GUID. The answer is
acted on code by code (notes §1):

==========================================  ===========================================================
answer                                      action
==========================================  ===========================================================
200 code 0                                  accepted; with acks on and an ``ackId``: accepted only once
                                            the ack query says ``true``
400 code 6/12/13 + ``invalid-event-number``  events before N accepted, N dead-lettered with the reason,
N                                           N+1… re-sent; without N: split until the bad event is alone
413 (too large)                             split in halves; one event alone: dead-lettered
429, 5xx; codes 8, 9, 18-20, 23, 26, 27     retried with exponential backoff and jitter, honouring
connection refused/reset, timeouts          ``Retry-After``; then :class:`DestinationError`
401/403; codes 1-4, 7, 10, 11, 15, 16;       :class:`DestinationConfigError`, no retry (token missing,
TLS verification failure                    invalid or disabled; index not allowed; channel; fields)
code 14 on the ack query                    acks are off for this token: switch to no-ack mode
anything else (a 200 without a HEC code:   :class:`DestinationError`, never "delivered"
a proxy's page, not Splunk; not JSON,
empty, or over 256 KB)
==========================================  ===========================================================

Every request has an overall deadline (``request_deadline``, 60 s: connect, TLS, body, the whole reply),
on top of the per-read ``timeout``; at most 256 KB of a reply is read. A refused certificate raises
:class:`DestinationConfigError` naming the cause (unknown CA, host name mismatch, expired).

Indexer acknowledgment (optional; Splunk Enterprise only): a 200 carries ``ackId``; the client polls
``POST /services/collector/ack?channel=<guid>`` with every pending id every ``ack_poll_interval``
seconds; ``true`` means indexed. ``false`` cannot tell "not yet" from "lost", so each request has a
deadline (``ack_timeout``); at the deadline the *whole request* is sent again (at-least-once; the
export core deduplicates on ``eventId`` and so can the SIEM), at most ``ack_resends`` times, then
:class:`DestinationError`. A 200 without ``ackId`` means the token has no acks: accepted.

The token is a :class:`pydantic.SecretStr`: it is only ever put in the ``Authorization`` header.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import ssl
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import httpx
import orjson
from pydantic import SecretStr

from siem_pipeline.destinations.base import (
    Backoff,
    BatchResult,
    DestinationConfigError,
    DestinationError,
    HttpDestination,
    Rejected,
    chunks,
    gzip_body,
    parse_retry_after,
    printable,
    tls_context,
)
from siem_pipeline.formats.hec import HecFormat

log = logging.getLogger(__name__)

EVENT_PATH: Final = "/services/collector/event"
#: Bytes of envelopes per request before compression: about 1 MB gzipped for audit events (the notes' practical
#: 1-5 MB; Splunk's limit is 800 MB), so an export batch of 1,000 events is one request, not four: each
#: request costs the client about a millisecond of CPU whatever its size.
DEFAULT_BATCH_BYTES: Final = 4_000_000
ACK_PATH: Final = "/services/collector/ack"

#: HEC codes that mean "busy, try again later".
BUSY_CODES: Final = frozenset({8, 9, 18, 19, 20, 23, 26, 27})
#: HEC codes that no retry fixes, with what a person should change.
CONFIG_CODES: Final = {
    1: "the HEC token is disabled",
    2: "no HEC token was sent",
    3: "the Authorization header was refused",
    4: "the HEC token is invalid",
    7: "the index is not allowed for this HEC token",
    10: "the token needs a data channel (indexer acknowledgment is on)",
    11: "the data channel was refused",
    15: "the indexed fields were refused (they must be flat)",
    16: "query-string authorization is not enabled",
}
#: HEC codes that name one bad event (with ``invalid-event-number``).
EVENT_CODES: Final = frozenset({6, 12, 13})


@dataclasses.dataclass(frozen=True)
class _Answer:
    status: int
    code: int | None
    text: str
    body: Mapping[str, Any]
    retry_after: float | None

    def describe(self) -> str:
        """``HTTP 503, code 9 (Server is busy)``; a reply that is not HEC's says what it was instead."""
        code = f", code {self.code}" if self.code is not None else ""
        return f"HTTP {self.status}{code} ({self.text})" if self.text else f"HTTP {self.status}{code}"


class HecClient(HttpDestination):
    """A Splunk HEC destination; build one per invocation and :meth:`close` it (or use ``with``)."""

    name = "splunk-hec"

    def __init__(self, url: str, token: SecretStr | str, *, hec_format: HecFormat | None = None,
                 ca_bundle: str | Path | None = None, compress: bool = True, compress_level: int = 1,
                 max_batch_bytes: int = DEFAULT_BATCH_BYTES, max_batch_events: int = 1000, timeout: float = 30.0,
                 ack: bool = False, ack_timeout: float = 300.0, ack_poll_interval: float = 10.0,
                 ack_resends: int = 2, backoff: Backoff | None = None, channel: str | None = None,
                 request_deadline: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError(f"invalid HEC URL {url!r}: expected https://host:8088")
        base = f"{parts.scheme}://{parts.netloc}"
        path = parts.path.rstrip("/")
        self.event_url = base + (path if path.startswith("/services/collector") else path + EVENT_PATH)
        self.ack_url = base + ACK_PATH
        self._token = token if isinstance(token, SecretStr) else SecretStr(token)
        if not self._token.get_secret_value().strip():
            raise DestinationConfigError("the HEC token is empty")
        self.format = hec_format or HecFormat()
        self.compress = compress
        self.compress_level = compress_level
        self.max_batch_bytes = max_batch_bytes
        self.max_batch_events = max_batch_events
        self.ack = ack
        self.ack_timeout = ack_timeout
        self.ack_poll_interval = ack_poll_interval
        self.ack_resends = ack_resends
        self.backoff = backoff or Backoff()
        #: called before every wait (backoff, ack polling): the export keeps its stream reservations alive
        self.on_wait: Callable[[], None] | None = None
        self.channel = channel or str(uuid.uuid4())
        self._clock = clock
        self.request_deadline = request_deadline
        verify: ssl.SSLContext | bool = tls_context(ca_bundle) if parts.scheme == "https" else False
        self._http = self._client(verify, timeout,
                                  limits=httpx.Limits(max_keepalive_connections=2, keepalive_expiry=60.0))

    def __repr__(self) -> str:
        return f"HecClient({self.event_url!r}, channel={self.channel!r}, ack={self.ack})"

    # -- the wire ----------------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Splunk {self._token.get_secret_value()}",
                "X-Splunk-Request-Channel": self.channel, "Content-Type": "application/json"}

    def _post(self, url: str, body: bytes, result: BatchResult, *, params: dict[str, str] | None = None,
              compress: bool = False) -> _Answer:
        """One request; transport failures raise :class:`DestinationError` (retried by the caller)."""
        headers = self._headers()
        if compress:
            body = gzip_body(body, self.compress_level)
            headers["Content-Encoding"] = "gzip"
        result.requests += 1
        result.wire_bytes += len(body)
        reply = self._request(url, body, headers, what=f"the HEC endpoint {self.event_url}", params=params)
        parsed: Any = {}
        note = ""
        if reply.truncated:
            note = reply.too_large()
        elif reply.body:
            try:
                parsed = orjson.loads(reply.body)
            except orjson.JSONDecodeError:
                note = f"not JSON: {reply.snippet()}"
            if not isinstance(parsed, dict):
                parsed, note = {}, note or f"not a JSON object: {reply.snippet()}"
        else:
            note = "an empty body"
        code = parsed.get("code")
        text = printable(str(parsed.get("text", ""))[:300]) if "text" in parsed else note
        return _Answer(reply.status, code if isinstance(code, int) and not isinstance(code, bool) else None, text,
                       parsed, parse_retry_after(reply.headers.get("Retry-After")))

    def _is_busy(self, answer: _Answer) -> bool:
        return (answer.code in BUSY_CODES or answer.status == 429 or answer.status >= 500) and answer.status != 200

    def _config_error(self, answer: _Answer) -> DestinationConfigError | None:
        if answer.code in CONFIG_CODES:
            return DestinationConfigError(f"Splunk HEC refused the request: {answer.describe()}: "
                                          f"{CONFIG_CODES[answer.code]}")
        if answer.status in (401, 403):
            return DestinationConfigError(f"Splunk HEC refused the request: {answer.describe()}: "
                                          "check the HEC token")
        return None

    # -- sending -----------------------------------------------------------------------------------

    def send(self, payloads: Sequence[bytes]) -> BatchResult:
        result = BatchResult()
        pending: dict[int, tuple[list[int], float, int]] = {}  # ackId -> (indices, deadline, resends)
        try:
            for group in chunks(payloads, self.max_batch_bytes, self.max_batch_events):
                self._deliver(payloads, group, result, pending, 0)
            if pending:
                self._await_acks(payloads, result, pending)
        except DestinationError as err:
            err.accepted = list(result.accepted)  # indexed (acknowledged, with acks on) before the failure
            raise
        result.check_complete(len(payloads))
        return result

    def _deliver(self, payloads: Sequence[bytes], indices: list[int], result: BatchResult,
                 pending: dict[int, tuple[list[int], float, int]], resends: int) -> None:
        queue: collections.deque[list[int]] = collections.deque([indices])
        while queue:
            group = queue.popleft()
            whole = len(group) == len(payloads)  # the whole batch (indices 0..n-1): no gathering
            body = b"\n".join(payloads if whole else [payloads[i] for i in group])
            attempt = 0
            while True:
                try:
                    answer = self._post(self.event_url, body, result, compress=self.compress)
                except DestinationConfigError:
                    raise
                except DestinationError:
                    attempt += 1
                    if attempt >= self.backoff.attempts:
                        raise
                    self._wait(attempt)
                    continue
                if self._is_busy(answer):
                    attempt += 1
                    if attempt >= self.backoff.attempts:
                        raise DestinationError(f"Splunk HEC stayed busy after {attempt} attempts: "
                                               f"{answer.describe()}")
                    log.info("HEC busy (%s), retrying %d events", answer.describe(), len(group))
                    self._wait(attempt, answer.retry_after)
                    continue
                break
            if answer.status == 200 and answer.code in (0, 24, 25):
                ack_id = answer.body.get("ackId")
                if self.ack and isinstance(ack_id, int):
                    pending[ack_id] = (group, self._clock() + self.ack_timeout, resends)
                else:
                    result.accepted.extend(group)
                continue
            if (error := self._config_error(answer)) is not None:
                raise error
            if answer.code in EVENT_CODES:
                bad = answer.body.get("invalid-event-number")
                if isinstance(bad, int) and 0 <= bad < len(group):
                    result.accepted.extend(group[:bad])
                    result.rejected.append(Rejected(group[bad], f"Splunk HEC rejected the event: {answer.describe()}"))
                    if group[bad + 1:]:
                        queue.appendleft(group[bad + 1:])
                    continue
            if answer.status == 413 or answer.code in EVENT_CODES:
                if len(group) == 1:
                    result.rejected.append(Rejected(group[0], f"Splunk HEC rejected the event "
                                                    f"({len(payloads[group[0]])} bytes): {answer.describe()}"))
                else:
                    half = len(group) // 2
                    queue.appendleft(group[half:])
                    queue.appendleft(group[:half])
                continue
            raise DestinationError(f"unexpected answer from Splunk HEC: {answer.describe()}")

    def _await_acks(self, payloads: Sequence[bytes], result: BatchResult,
                    pending: dict[int, tuple[list[int], float, int]]) -> None:
        failures = 0
        while pending:
            self._pause(self.ack_poll_interval)
            try:
                answer = self._post(self.ack_url, orjson.dumps({"acks": sorted(pending)}), result,
                                    params={"channel": self.channel})
            except DestinationConfigError:
                raise
            except DestinationError:
                answer = None
            if answer is not None and answer.code == 14:
                log.warning("indexer acknowledgment is disabled for this HEC token; switching to no-ack mode")
                self.ack = False
                for group, _, _ in pending.values():
                    result.accepted.extend(group)
                pending.clear()
                return
            if answer is None or answer.status != 200:
                if answer is not None and (error := self._config_error(answer)) is not None:
                    raise error
                failures += 1
                if failures >= self.backoff.attempts:
                    raise DestinationError("the HEC ack query kept failing: "
                                           f"{answer.describe() if answer else 'transport error'}")
                continue
            failures = 0
            acks = answer.body.get("acks")
            if isinstance(acks, dict):
                for key, done in acks.items():
                    if done is True and key.isdigit() and int(key) in pending:
                        result.accepted.extend(pending.pop(int(key))[0])
            now = self._clock()
            for ack_id in [a for a, (_, deadline, _) in pending.items() if deadline <= now]:
                group, _, resends = pending.pop(ack_id)
                if resends >= self.ack_resends:
                    raise DestinationError(f"Splunk HEC never acknowledged {len(group)} events "
                                           f"(ackId {ack_id}) after {resends} resends")
                log.warning("no ack for ackId %d within %.0f s: sending its %d events again",
                            ack_id, self.ack_timeout, len(group))
                self._deliver(payloads, group, result, pending, resends + 1)
