"""Writing to a stream: PutMessages in requests within the Streaming limits, failed entries retried.

* **Request size.** Streaming caps a request at 1 MB. Whether the service counts the decoded or the
  base64 bytes is not documented, so the producer counts what goes on the wire: the JSON body it
  sends, with keys and values base64-encoded (4/3 of the raw size plus the per-entry JSON), and keeps
  it at most ``max_request_bytes`` (default 1,000,000). A message whose request alone would be larger
  raises :class:`MessageTooLarge` before anything is sent.
* **Messages per request** are also bounded (``max_messages``; the documented limit is the size only,
  the count cap keeps the response and a retry small).
* **Keys** are the caller's: the partition is a hash of the key, so a key with many values (an
  eventId for events) spreads writes evenly over the partitions.
* **Failures.** A whole-request error (429, 5xx, a dropped connection) is retried by the client's
  retry strategy (the factory gives every client one). A 200 can still carry per-entry failures
  (``entries[i].error``): only those entries are sent again, after an exponential backoff, up to
  ``max_attempts`` times each; then :class:`PutMessagesError` is raised. Nothing is dropped silently.
  A retried entry gets a new offset, so the order of the messages in a partition is the order they
  were accepted in, not the order given.
* **Throttling is flow control, not failure.** Entries refused because their partition is over its
  write budget (``TooManyRequests``: 1 MB/s per partition) do not use up attempts. The requests after
  the one that met the throttle are held back (they would be refused too), and after a pause as long as
  the refused bytes take at that rate (at most a second: a partition's bucket holds one second of
  budget) the refused and held-back entries go on, until ``deadline`` (a ``time.monotonic()`` value:
  the invocation's end, less what the caller needs after) or, without one, ``max_throttle_seconds`` of
  pauses. Several fetches writing one partition at once thus share its budget instead of failing their
  windows and writing them all again on the retry.

The body is serialized here (orjson, exact size known) and handed to ``StreamClient.put_messages`` as
bytes, which the SDK sends as-is.
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import random
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

log = logging.getLogger(__name__)

#: What Streaming accepts in one PutMessages request (documented as 1 MB).
MAX_REQUEST_BYTES: Final = 1_000_000
#: The documented key limit.
MAX_KEY_BYTES: Final = 256
DEFAULT_MAX_MESSAGES: Final = 1_000
#: What a partition takes per second (documented: 1 MB/s), to pace entries it throttled.
PARTITION_WRITE_BYTES_PER_SECOND: Final = 1_000_000
#: Entry errors that mean "this partition is over its write budget now".
THROTTLED: Final = frozenset({"TooManyRequests", "Throttled", "429"})

_ENVELOPE = len(b'{"messages":[]}')
#: ``{"key":"…","value":"…"}`` minus the two payloads, plus the separating comma
_ENTRY = len(b'{"key":"","value":""},')


class MessageTooLarge(ValueError):
    """One message cannot fit in a request on its own (or its key is over 256 bytes)."""

    def __init__(self, index: int, size: int, limit: int) -> None:
        super().__init__(f"message {index} needs a {size}-byte request; the limit is {limit} bytes")
        self.index, self.size, self.limit = index, size, limit


class PutMessagesError(RuntimeError):
    """Some entries still failed after every attempt: nothing after them should be considered written."""

    def __init__(self, stream_id: str, failed: int, total: int, errors: dict[str, int], sample: str) -> None:
        super().__init__(f"PutMessages to {stream_id}: {failed} of {total} messages still failing after retries "
                         f"(errors {errors}; e.g. {sample})")
        self.stream_id, self.failed, self.total, self.errors = stream_id, failed, total, errors


@dataclasses.dataclass(frozen=True)
class Written:
    """Where one message landed."""

    partition: str
    offset: int


@dataclasses.dataclass
class _Encoded:
    index: int
    json: bytes  # the entry's JSON object
    size: int  # its share of the request, separator included


def _encode(index: int, key: bytes | None, value: bytes) -> _Encoded:
    if key is not None and len(key) > MAX_KEY_BYTES:
        raise MessageTooLarge(index, len(key), MAX_KEY_BYTES)
    value_b64 = base64.b64encode(value)
    if key is None:
        entry = b'{"key":null,"value":"' + value_b64 + b'"}'
    else:
        entry = b'{"key":"' + base64.b64encode(key) + b'","value":"' + value_b64 + b'"}'
    return _Encoded(index, entry, len(entry) + 1)


def _b64_len(n: int) -> int:
    return 4 * ((n + 2) // 3)


def single_request_size(key: bytes | None, value: bytes) -> int:
    """The body size of a request carrying only this message (computed, nothing encoded)."""
    key_part = len(b"null") if key is None else _b64_len(len(key)) + 2
    return _ENVELOPE + len(b'{"key":,"value":""}') + key_part + _b64_len(len(value))


def fits_alone(key: bytes | None, value: bytes, max_request_bytes: int = MAX_REQUEST_BYTES) -> bool:
    """Whether a message can be put at all (its key within 256 bytes, its request within the limit)."""
    return (key is None or len(key) <= MAX_KEY_BYTES) and single_request_size(key, value) <= max_request_bytes


def request_size(messages: Sequence[tuple[bytes | None, bytes]]) -> int:
    """The exact body size of one PutMessages request holding ``messages``."""
    return _ENVELOPE + sum(_encode(i, k, v).size for i, (k, v) in enumerate(messages)) - (1 if messages else 0)


@dataclasses.dataclass
class ProducerStats:
    requests: int = 0
    messages: int = 0
    bytes: int = 0
    retried_entries: int = 0


class StreamProducer:
    """Puts messages on one stream through a ``StreamClient`` (``factory.stream(messages_endpoint)``)."""

    def __init__(self, client: Any, stream_id: str, *, max_request_bytes: int = MAX_REQUEST_BYTES,
                 max_messages: int = DEFAULT_MAX_MESSAGES, max_attempts: int = 5, backoff_seconds: float = 0.5,
                 max_backoff_seconds: float = 10.0, max_throttle_seconds: float = 120.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if max_request_bytes <= _ENVELOPE + _ENTRY or max_messages < 1 or max_attempts < 1:
            raise ValueError("max_request_bytes, max_messages and max_attempts are too small")
        self.client = client
        self.stream_id = stream_id
        self.max_request_bytes = max_request_bytes
        self.max_messages = max_messages
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.max_throttle_seconds = max_throttle_seconds
        #: when throttled entries stop being retried (``time.monotonic()``); None: ``max_throttle_seconds``
        self.deadline: float | None = None
        self.sleep = sleep
        self.stats = ProducerStats()

    def put(self, messages: Sequence[tuple[bytes | None, bytes]]) -> list[Written]:
        """Write every ``(key, value)``; returns where each landed, in the order given. Raises when any fails."""
        limit = self.max_request_bytes - _ENVELOPE + 1  # the last entry has no separator
        pending: list[_Encoded] = []
        for i, (key, value) in enumerate(messages):
            encoded = _encode(i, key, value)
            if encoded.size > limit:
                raise MessageTooLarge(i, encoded.size - 1 + _ENVELOPE, self.max_request_bytes)
            pending.append(encoded)
        results: list[Written | None] = [None] * len(pending)
        attempt = 0  # rounds with failures other than throttling
        throttled_for = 0.0  # seconds paused for throttling
        delay = 0.0
        last_errors: dict[str, int] = {}
        sample = ""
        first = True
        while pending:
            if not first:
                self.stats.retried_entries += len(pending)
                self.sleep(delay)
            first = False
            failed: list[_Encoded] = []
            last_errors = {}
            throttled_bytes = 0
            batches = self._batches(pending, limit)
            sent = 0
            for batch in batches:
                sent += 1
                for encoded, entry in zip(batch, self._send(batch), strict=True):
                    if entry.error:
                        failed.append(encoded)
                        last_errors[entry.error] = last_errors.get(entry.error, 0) + 1
                        sample = f"{entry.error}: {entry.error_message}"
                        if entry.error in THROTTLED:
                            throttled_bytes += encoded.size
                    else:
                        results[encoded.index] = Written(str(entry.partition), int(entry.offset))
                if throttled_bytes:
                    break  # a partition is full: the next requests would be refused too
            pending = failed + [encoded for batch in batches[sent:] for encoded in batch]
            if not pending:
                break
            if set(last_errors) <= THROTTLED:
                # flow control: a partition's bucket holds a second of its budget, so wait until it has room for
                # what it refused (at most that second), and go on from there
                delay = min(max(throttled_bytes / PARTITION_WRITE_BYTES_PER_SECOND, 0.05), 1.0)
                delay *= 0.75 + random.random() / 2
                throttled_for += delay
                over = (time.monotonic() + delay > self.deadline if self.deadline is not None
                        else throttled_for > self.max_throttle_seconds)
                log.debug("PutMessages to %s: %d entries throttled; again in %.2f s", self.stream_id,
                          len(failed), delay)
                if over:
                    raise PutMessagesError(self.stream_id, len(pending), len(messages), last_errors, sample)
                continue
            attempt += 1
            log.warning("PutMessages to %s: %d entries failed (attempt %d of %d): %s", self.stream_id,
                        len(failed), attempt, self.max_attempts, last_errors)
            if attempt >= self.max_attempts:
                raise PutMessagesError(self.stream_id, len(pending), len(messages), last_errors, sample)
            delay = min(self.backoff_seconds * 2 ** (attempt - 1), self.max_backoff_seconds)
            delay *= 0.5 + random.random() / 2
        if throttled_for:
            log.info("PutMessages to %s: paused %.1f s in all for throttled partitions", self.stream_id, throttled_for)
        return [r for r in results if r is not None]

    def _batches(self, entries: list[_Encoded], limit: int) -> list[list[_Encoded]]:
        batches: list[list[_Encoded]] = []
        batch: list[_Encoded] = []
        size = 0
        for encoded in entries:
            if batch and (size + encoded.size > limit or len(batch) >= self.max_messages):
                batches.append(batch)
                batch, size = [], 0
            batch.append(encoded)
            size += encoded.size
        if batch:
            batches.append(batch)
        return batches

    def _send(self, batch: list[_Encoded]) -> list[Any]:
        body = b'{"messages":[' + b",".join(e.json for e in batch) + b"]}"
        assert len(body) <= self.max_request_bytes, (len(body), self.max_request_bytes)
        response = self.client.put_messages(self.stream_id, body)
        entries: list[Any] = response.data.entries or []
        if len(entries) != len(batch):
            raise RuntimeError(f"PutMessages to {self.stream_id} answered {len(entries)} entries for {len(batch)} "
                               "messages: cannot tell which were written")
        self.stats.requests += 1
        self.stats.messages += len(batch)
        self.stats.bytes += len(body)
        return entries
