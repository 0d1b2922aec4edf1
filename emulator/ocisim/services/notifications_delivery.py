"""Asynchronous ONS delivery: one record per message and subscription, retried on the virtual clock.

OCI retries a delivery that is not acknowledged (a non-2xx answer, a timeout, a refused connection)
first immediately, then after 1, 2, 4, 8, 16 and 32 minutes, and every 32 minutes after that, until
the subscription's ``maxRetryDuration`` (default two hours) has passed since the message was
published; then the message is discarded. ocisim follows that schedule on the *virtual* clock: a
background worker wakes whenever the clock jumps (``Clock.on_change``) and otherwise every
:data:`TICK` real seconds, and starts every attempt that is due. A test that makes a subscriber
fail twice moves the clock a minute ahead to see the third attempt succeed.

A ``Delivery`` fault rule (:mod:`ocisim.faults`) fails attempts before they reach the subscriber, so
a test can watch the retries and, past ``maxRetryDuration``, the discard.

Every record stays in a bounded log that the control API exposes
(``GET /_ocisim/ons/deliveries``); :meth:`DeliveryEngine.drain` waits until nothing is in flight
and no retry is due, so tests and the demo can wait deterministically instead of sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from ocisim import errors
from ocisim.clock import Clock, rfc3339
from ocisim.world import World

log = logging.getLogger("ocisim.ons")

#: Delays (virtual seconds) before the 2nd, 3rd, … attempt; the last one repeats.
BACKOFF = (0.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0)
#: Longest real time the worker sleeps without looking at the clock.
TICK = 0.5
#: Records kept in the log; the oldest finished ones go first.
MAX_LOG = 10_000
#: Real seconds an HTTPS endpoint has to answer one attempt.
HTTP_TIMEOUT = 10.0

PENDING, IN_FLIGHT, RETRY_WAIT = "PENDING", "IN_FLIGHT", "RETRY_WAIT"
DELIVERED, FAILED, CANCELED, SIMULATED = "DELIVERED", "FAILED", "CANCELED", "SIMULATED"
ACTIVE_STATES = frozenset({PENDING, IN_FLIGHT, RETRY_WAIT})


@dataclasses.dataclass
class Attempt:
    time: float  # virtual
    status: int | None
    error: str | None


@dataclasses.dataclass
class Delivery:
    """One message (or subscription confirmation) on its way to one subscription."""

    id: str
    region: str
    kind: str  # MESSAGE | CONFIRMATION
    message_id: str
    topic_id: str
    subscription_id: str
    protocol: str
    endpoint: str
    title: str | None
    body: bytes
    headers: dict[str, str]
    created: float  # virtual
    #: how long after ``created`` retries may still start (seconds); 0 means a single attempt
    max_retry_seconds: float
    state: str = PENDING
    next_at: float = 0.0
    attempts: list[Attempt] = dataclasses.field(default_factory=list)
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "deliveryId": self.id, "region": self.region, "kind": self.kind, "messageId": self.message_id,
            "topicId": self.topic_id, "subscriptionId": self.subscription_id, "protocol": self.protocol,
            "endpoint": self.endpoint, "title": self.title, "body": self.body.decode("utf-8", "replace"),
            "headers": self.headers, "state": self.state, "reason": self.reason,
            "timeCreated": rfc3339(self.created),
            "nextAttemptTime": rfc3339(self.next_at) if self.state in (PENDING, RETRY_WAIT) else None,
            "attempts": [{"time": rfc3339(a.time), "status": a.status, "error": a.error} for a in self.attempts],
        }


#: Sends one attempt; answers the HTTP status (None when no answer came) and an error text.
Sender = Callable[[Delivery], Awaitable[tuple[int | None, str | None]]]


class DeliveryEngine:
    """Schedules attempts of every delivery; all methods run on the server's event loop, except
    :meth:`wake`, which any thread may call (the clock's listeners run where the clock moved)."""

    def __init__(self, clock: Clock, send: Sender) -> None:
        self._clock = clock
        self._send = send
        self._deliveries: dict[str, Delivery] = {}
        #: the unfinished ones (PENDING, IN_FLIGHT, RETRY_WAIT): all the worker has to look at
        self._active: dict[str, Delivery] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._worker: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._listening = False

    # -- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        if not self._listening:
            self._clock.on_change(self.wake)
            self._listening = True
        self._worker = asyncio.create_task(self._run(), name="ocisim-ons-delivery")

    async def stop(self) -> None:
        tasks = [t for t in (self._worker, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._worker = None
        self._tasks.clear()
        self._loop = None

    def reset(self) -> None:
        """Forget every delivery and abandon the attempts under way (the worker keeps running)."""
        for task in list(self._tasks):
            task.cancel()
        self._tasks.clear()
        self._deliveries.clear()
        self._active.clear()

    def wake(self) -> None:
        """Make the worker look at the clock now; safe from any thread."""
        loop, event = self._loop, self._wake
        if loop is None or event is None:
            return
        with contextlib.suppress(RuntimeError):  # a closed loop has nothing left to wake
            loop.call_soon_threadsafe(event.set)

    # -- records ----------------------------------------------------------------------------------

    def submit(self, delivery: Delivery) -> None:
        """Queue a delivery; its first attempt starts as soon as the worker runs."""
        delivery.state, delivery.next_at = PENDING, self._clock.time()
        self._store(delivery)
        self._active[delivery.id] = delivery
        self.wake()

    def record(self, delivery: Delivery) -> None:
        """Log a delivery that needs no attempt (protocols ocisim only simulates)."""
        self._store(delivery)

    def cancel(self, subscription_id: str, reason: str) -> None:
        """Stop retrying every unfinished delivery to ``subscription_id`` (it was deleted)."""
        for delivery in list(self._active.values()):
            if delivery.subscription_id == subscription_id:
                delivery.state, delivery.reason = CANCELED, reason
                del self._active[delivery.id]

    def records(self, *, region: str | None = None, topic_id: str | None = None, subscription_id: str | None = None,
                message_id: str | None = None, kind: str | None = None) -> list[Delivery]:
        return [d for d in self._deliveries.values()
                if (region is None or d.region == region) and (topic_id is None or d.topic_id == topic_id)
                and (subscription_id is None or d.subscription_id == subscription_id)
                and (message_id is None or d.message_id == message_id) and (kind is None or d.kind == kind)]

    def _store(self, delivery: Delivery) -> None:
        """Log ``delivery``; past :data:`MAX_LOG` records, forget the oldest tenth of the finished ones."""
        self._deliveries[delivery.id] = delivery
        if len(self._deliveries) > MAX_LOG:
            finished = [k for k, d in self._deliveries.items() if d.state not in ACTIVE_STATES]
            for key in finished[:max(1, MAX_LOG // 10)]:
                del self._deliveries[key]

    # -- waiting ----------------------------------------------------------------------------------

    def busy(self) -> bool:
        """Whether an attempt is under way or due (retries waiting for a later time do not count)."""
        now = self._clock.time()
        return any(d.state in (PENDING, IN_FLIGHT) or d.next_at <= now for d in self._active.values())

    async def drain(self, within: float) -> bool:
        """Wait until :meth:`busy` is false; False if ``within`` real seconds passed first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while self.busy():
            if loop.time() >= deadline:
                return False
            self.wake()
            await asyncio.sleep(0.005)
        return True

    # -- the worker -------------------------------------------------------------------------------

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            self._wake.clear()
            wait = self._dispatch_due()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    def _dispatch_due(self) -> float:
        """Start every due attempt; answers how long (real seconds) the worker may sleep."""
        now = self._clock.time()
        sleep = TICK
        for delivery in list(self._active.values()):
            if delivery.state == IN_FLIGHT:
                continue
            if delivery.next_at <= now:
                delivery.state = IN_FLIGHT
                task = asyncio.create_task(self._attempt(delivery), name=f"ocisim-ons-{delivery.id}")
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            elif not self._clock.frozen:
                sleep = min(sleep, delivery.next_at - now)
        return max(sleep, 0.0)

    async def _attempt(self, delivery: Delivery) -> None:
        try:
            status, error = await self._send(delivery)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a sender bug must not kill the worker; it counts as a failure
            log.exception("ONS delivery %s failed unexpectedly", delivery.id)
            status, error = None, f"{type(exc).__name__}: {exc}"
        now = self._clock.time()
        delivery.attempts.append(Attempt(now, status, error))
        if delivery.state != IN_FLIGHT:  # canceled while the attempt ran
            return
        if status is not None and 200 <= status < 300:
            delivery.state, delivery.reason = DELIVERED, None
        else:
            self._schedule_retry(delivery, now, status, error)
        if delivery.state not in ACTIVE_STATES:
            self._active.pop(delivery.id, None)
        self.wake()

    def _schedule_retry(self, delivery: Delivery, now: float, status: int | None, error: str | None) -> None:
        n = len(delivery.attempts)
        delay = BACKOFF[min(n - 1, len(BACKOFF) - 1)]
        next_at = max(now + delay, now)
        what = f"HTTP {status}" if status is not None else (error or "no answer")
        if delivery.max_retry_seconds <= 0 or next_at > delivery.created + delivery.max_retry_seconds:
            delivery.state = FAILED
            delivery.reason = f"discarded after {n} attempt(s): {what}"
            return
        delivery.state, delivery.next_at, delivery.reason = RETRY_WAIT, next_at, what


class Transport:
    """How one attempt reaches its subscriber: an HTTP POST of the body with the ``X-OCI-NS-*``
    headers, or an invocation through the Functions service's ``functions.invoke`` hook."""

    def __init__(self, world: World) -> None:
        self._world = world
        self._http: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def send(self, delivery: Delivery) -> tuple[int | None, str | None]:
        faults = self._world.faults
        fault = faults.roll(delivery.region, "notifications", "Delivery",
                            (delivery.topic_id, delivery.subscription_id, delivery.endpoint)) if faults.rules else None
        if fault is not None:  # the attempt fails on the way: the subscriber never sees it
            if fault.latency_ms:
                await asyncio.sleep(fault.latency_ms / 1000)
            if fault.action == "reset":
                return None, "connection reset (fault injection)"
            if fault.status:
                error = fault.error()
                return error.status, f"{error.code}: {error.message}"
        if delivery.protocol == "ORACLE_FUNCTIONS":
            return await self._invoke(delivery)
        return await self._post(delivery)

    async def _invoke(self, delivery: Delivery) -> tuple[int | None, str | None]:
        world = self._world
        if not world.has("functions.invoke"):
            return None, "the Functions service is not served"
        try:
            status, _body, _headers = await world.call(
                "functions.invoke", delivery.region, delivery.endpoint, delivery.body,
                headers=dict(delivery.headers), detached=False)
        except errors.OciError as exc:
            return exc.status, f"{exc.code}: {exc.message}"
        status = int(status)
        return status, None if 200 <= status < 300 else f"the function answered {status}"

    async def _post(self, delivery: Delivery) -> tuple[int | None, str | None]:
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT))
        try:
            async with self._http.post(delivery.endpoint, data=delivery.body, headers=delivery.headers) as response:
                await response.read()
                ok = 200 <= response.status < 300
                return response.status, None if ok else f"the endpoint answered HTTP {response.status}"
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            return None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
