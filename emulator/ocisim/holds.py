"""Held answers: a matching call is served — its effect in the world is real — and its answer is held
until the rule is withdrawn, so a test can stop a client between an OCI write and the moment the client
learns its result (the worst place for a crash).

A rule matches a (region, service, operation) triple of globs (``"Create*"``; ``operations`` is a list
of them) and holds the answers of successful calls only (2xx): it lets ``after`` of them through, then
holds ``count`` answers, each until the rule is removed (``DELETE /_ocisim/holds/{id}``, ``DELETE
/_ocisim/holds``, or a reset) or ``timeoutMs`` passes when set. ``seen`` counts the matching successful
calls, ``held`` the answers held so far.

Control API: ``GET``/``POST``/``DELETE /_ocisim/holds``, ``DELETE /_ocisim/holds/{holdId}``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import fnmatch
import itertools
import time
from typing import Any

from aiohttp import web

from ocisim import errors
from ocisim.framework import ControlRoute, json_response

_IDS = itertools.count(1)
#: how often a held answer looks whether its rule is still in force
_POLL_SECONDS = 0.02


@dataclasses.dataclass
class HoldRule:
    region: str = "*"
    service: str = "*"
    operations: tuple[str, ...] = ("*",)
    #: matching successful calls let through before the rule starts holding
    after: int = 0
    #: how many answers to hold
    count: int = 1
    #: the longest a held answer waits, in milliseconds; 0: until the rule is withdrawn
    timeout_ms: int = 0
    id: str = dataclasses.field(default_factory=lambda: f"hold-{next(_IDS)}")
    seen: int = 0
    held: int = 0

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> HoldRule:
        known = {"region", "service", "operation", "operations", "after", "count", "timeoutMs"}
        unknown = sorted(set(body) - known)
        if unknown:
            raise errors.invalid(f"Unknown hold field '{unknown[0]}'.")
        operations = body.get("operations", [body.get("operation", "*")])
        if (not isinstance(operations, list) or not operations
                or not all(isinstance(o, str) and o for o in operations)):
            raise errors.invalid("'operations' must be a non-empty list of operation names or globs.")
        numbers = {name: body.get(name, default) for name, default in (("after", 0), ("count", 1), ("timeoutMs", 0))}
        for name, value in numbers.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise errors.invalid(f"'{name}' must be a non-negative integer.")
        for name in ("region", "service"):
            if not isinstance(body.get(name, "*"), str):
                raise errors.invalid(f"'{name}' must be a string.")
        return cls(region=body.get("region", "*"), service=body.get("service", "*"), operations=tuple(operations),
                   after=numbers["after"], count=numbers["count"], timeout_ms=numbers["timeoutMs"])

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "region": self.region, "service": self.service, "operations": list(self.operations),
                "after": self.after, "count": self.count, "timeoutMs": self.timeout_ms, "seen": self.seen,
                "held": self.held}

    def matches(self, region: str, service: str, operation: str) -> bool:
        return (fnmatch.fnmatchcase(region, self.region) and fnmatch.fnmatchcase(service, self.service)
                and any(fnmatch.fnmatchcase(operation, o) for o in self.operations))


class Holds:
    """The hold rules in force; the server asks :meth:`take` after each successful call."""

    def __init__(self) -> None:
        self.rules: list[HoldRule] = []

    def clear(self) -> None:
        self.rules = []

    def take(self, region: str, service: str, operation: str) -> HoldRule | None:
        """The rule that holds this (successful) call's answer, counting it; None: answer at once."""
        for rule in self.rules:
            if not rule.matches(region, service, operation):
                continue
            rule.seen += 1
            if rule.seen <= rule.after or rule.held >= rule.count:
                continue
            rule.held += 1
            return rule
        return None

    async def hold(self, rule: HoldRule) -> None:
        """Wait while ``rule`` is in force (or until its timeout)."""
        deadline = time.monotonic() + rule.timeout_ms / 1000 if rule.timeout_ms else None
        while any(r is rule for r in self.rules):
            if deadline is not None and time.monotonic() >= deadline:
                return
            await asyncio.sleep(_POLL_SECONDS)

    def control_routes(self) -> list[ControlRoute]:
        async def list_holds(_request: web.Request) -> web.StreamResponse:
            return json_response([r.to_json() for r in self.rules])

        async def add_hold(request: web.Request) -> web.StreamResponse:
            from ocisim.control import read_json

            rule = HoldRule.from_json(await read_json(request))
            self.rules.append(rule)
            return json_response(rule.to_json(), status=201)

        async def clear_holds(_request: web.Request) -> web.StreamResponse:
            self.clear()
            return web.Response(status=204)

        async def delete_hold(request: web.Request) -> web.StreamResponse:
            before = len(self.rules)
            self.rules = [r for r in self.rules if r.id != request.match_info["holdId"]]
            if len(self.rules) == before:
                raise errors.not_found()
            return web.Response(status=204)

        return [ControlRoute("GET", "/holds", list_holds), ControlRoute("POST", "/holds", add_hold),
                ControlRoute("DELETE", "/holds", clear_holds), ControlRoute("DELETE", "/holds/{holdId}", delete_hold)]
