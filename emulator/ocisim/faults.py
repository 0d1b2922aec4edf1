"""Seeded fault injection: errors, latency and dropped connections, per service and operation.

A rule matches a (region, service, operation) triple, where any part may be ``"*"``. Services
also roll for faults inside an operation, so partial failures and platform events are injected the
same way; a rule may then also name the ``resource`` (an OCID) it applies to:

===============  =======================  ==================================================================
service          operation                what a hit does
===============  =======================  ==================================================================
streaming        ``PutMessages.entry``    that entry fails (``error``/``errorMessage`` of the entry)
streaming        ``Cursor.expired``       a GetMessages, ConsumerCommit or ConsumerHeartbeat whose cursor
                                          is still valid answers as if it had expired (400
                                          ``InvalidParameter``; OCI cursors live 5 min); resource: the
                                          stream
notifications    ``Delivery``             one ONS delivery attempt fails without reaching the subscriber:
                                          ``error`` as that HTTP answer, ``reset`` as no answer; ONS
                                          retries it on its schedule until ``maxRetryDuration`` ends;
                                          resource: the topic, the subscription or its endpoint
functions        ``Invoke.kill``          the function's process is killed (``SIGKILL``, as an OOM kill)
                                          ``latencyMs`` after the call reached it (action ``kill``):
                                          ``502 FunctionInvokeExecutionError``; resource: the function
===============  =======================  ==================================================================
"""

from __future__ import annotations

import dataclasses
import itertools
import random
from typing import Any

from ocisim import errors

_IDS = itertools.count(1)
#: In-operation rolls that only a rule naming them matches (an ``operation: "*"`` rule, meant for API
#: calls, must not start killing functions or failing ONS deliveries).
NAMED_ONLY = frozenset({"Cursor.expired", "Delivery", "Invoke.kill"})


@dataclasses.dataclass
class FaultRule:
    service: str = "*"
    operation: str = "*"
    region: str = "*"
    #: HTTP status to answer with; 0 means no error (a latency-only rule)
    status: int = 500
    code: str | None = None
    message: str = "Injected fault."
    #: probability that a matching call is hit
    rate: float = 1.0
    #: how many more times the rule may hit; None means forever (1 is a one-shot)
    count: int | None = None
    #: matching calls to let through before the rule starts hitting
    after: int = 0
    #: delay added before answering, in milliseconds
    latency_ms: int = 0
    #: "error" answers with status/code; "reset" drops the connection without an answer; "kill" (only for
    #: ``functions``/``Invoke.kill``) kills the function's process mid-call
    action: str = "error"
    #: the OCID (or ONS endpoint) an in-operation roll is about; "*" matches any, and a rule naming one
    #: never matches a plain API call (those are rolled without a resource)
    resource: str = "*"
    id: str = dataclasses.field(default_factory=lambda: f"fault-{next(_IDS)}")
    hits: int = 0
    seen: int = 0

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> FaultRule:
        known = {f.name for f in dataclasses.fields(cls)} - {"id", "hits", "seen"}
        mapping = {"latencyMs": "latency_ms"}
        kwargs: dict[str, Any] = {}
        for key, value in body.items():
            name = mapping.get(key, key)
            if name not in known:
                raise errors.invalid(f"Unknown fault field '{key}'.")
            kwargs[name] = value
        rule = cls(**kwargs)
        if not 0.0 <= float(rule.rate) <= 1.0:
            raise errors.invalid("'rate' must be between 0 and 1.")
        if rule.action not in ("error", "reset", "kill"):
            raise errors.invalid("'action' must be 'error', 'reset' or 'kill'.")
        if rule.action == "kill" and (rule.service, rule.operation) != ("functions", "Invoke.kill"):
            raise errors.invalid("'action' 'kill' applies only to service 'functions', operation 'Invoke.kill'.")
        if rule.count is not None and int(rule.count) < 0:
            raise errors.invalid("'count' must not be negative.")
        if rule.status and not 400 <= rule.status <= 599:
            raise errors.invalid("'status' must be an HTTP error status (400-599) or 0.")
        return rule

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "service": self.service, "operation": self.operation, "region": self.region,
            "status": self.status, "code": self.code, "message": self.message, "rate": self.rate,
            "count": self.count, "after": self.after, "latencyMs": self.latency_ms,
            "action": self.action, "resource": self.resource, "hits": self.hits, "seen": self.seen,
        }

    def matches(self, region: str, service: str, operation: str, resources: tuple[str, ...] = ()) -> bool:
        operation_matches = self.operation == operation or (self.operation == "*" and operation not in NAMED_ONLY)
        return (self.service in ("*", service) and operation_matches
                and self.region in ("*", region) and (self.resource == "*" or self.resource in resources))

    def error(self) -> errors.OciError:
        code = self.code or errors.DEFAULT_CODES.get(self.status, "InternalServerError")
        return errors.OciError(self.status, code, self.message)


class FaultInjector:
    def __init__(self, seed: int = 0) -> None:
        self.rules: list[FaultRule] = []
        self.rng = random.Random(seed)

    def reset(self, seed: int) -> None:
        self.rules = []
        self.rng = random.Random(seed)

    def add(self, rule: FaultRule) -> FaultRule:
        self.rules.append(rule)
        return rule

    def remove(self, rule_id: str) -> bool:
        before = len(self.rules)
        self.rules = [r for r in self.rules if r.id != rule_id]
        return len(self.rules) != before

    def roll(self, region: str, service: str, operation: str, resources: tuple[str, ...] = ()) -> FaultRule | None:
        """The first rule that hits this call (about ``resources``, when an in-operation roll is about
        particular OCIDs), counting it; None when the call goes through."""
        if not self.rules:
            return None
        for rule in self.rules:
            if not rule.matches(region, service, operation, resources):
                continue
            rule.seen += 1
            if rule.seen <= rule.after:
                continue
            if rule.count is not None and rule.hits >= rule.count:
                continue
            if rule.rate < 1.0 and self.rng.random() >= rule.rate:
                continue
            rule.hits += 1
            return rule
        return None
