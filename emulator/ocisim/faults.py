"""Seeded fault injection: errors, latency and dropped connections, per service and operation.

A rule matches a (region, service, operation) triple, where any part may be ``"*"``. Services
also roll for faults inside an operation (for instance one ``PutMessages`` entry failing:
operation ``"PutMessages.entry"``), so partial failures are injected the same way.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
from typing import Any

from ocisim import errors

_IDS = itertools.count(1)


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
    #: "error" answers with status/code; "reset" drops the connection without an answer
    action: str = "error"
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
        if rule.action not in ("error", "reset"):
            raise errors.invalid("'action' must be 'error' or 'reset'.")
        if rule.status and not 400 <= rule.status <= 599:
            raise errors.invalid("'status' must be an HTTP error status (400-599) or 0.")
        return rule

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "service": self.service, "operation": self.operation, "region": self.region,
            "status": self.status, "code": self.code, "message": self.message, "rate": self.rate,
            "count": self.count, "after": self.after, "latencyMs": self.latency_ms,
            "action": self.action, "hits": self.hits, "seen": self.seen,
        }

    def matches(self, region: str, service: str, operation: str) -> bool:
        return (self.service in ("*", service) and self.operation in ("*", operation)
                and self.region in ("*", region))

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

    def roll(self, region: str, service: str, operation: str) -> FaultRule | None:
        """The first rule that hits this call, counting it; None when the call goes through."""
        if not self.rules:
            return None
        for rule in self.rules:
            if not rule.matches(region, service, operation):
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
