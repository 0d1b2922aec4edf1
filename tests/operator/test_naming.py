"""Deterministic display names and retry tokens."""

from __future__ import annotations

import re

import pytest

from siem_operator.children import ChildKind, Ref
from siem_operator.naming import MAX_NAME_LENGTH, PipelineIdentity, child_name, display_name, retry_token

NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")


@pytest.mark.parametrize(("namespace", "name", "key"), [
    ("security", "audit-to-splunk", "events-stream"),
    ("default", "p", "fetch-fn"),
    ("a" * 63, "b." * 100 + "c", "dead-letter-stream"),
    ("kube-system", "x.y.z", "trigger-autoscaling"),
    ("ns", "UPPER_and_under", "k"),
])
def test_names_are_short_safe_and_stable(namespace: str, name: str, key: str) -> None:
    first = display_name(namespace, name, key)
    assert first == display_name(namespace, name, key)
    assert len(first) <= MAX_NAME_LENGTH
    assert NAME.match(first), first
    assert first.startswith("siem-")
    assert key[:20].rstrip("-") in first


def test_readable_when_short() -> None:
    assert display_name("security", "audit", "events-stream").startswith("siem-security-audit-events-stream-")


@pytest.mark.parametrize(("a", "b"), [
    (("a-b", "c", "k"), ("a", "b-c", "k")),  # same text once joined
    (("ns", "p.q", "k"), ("ns", "p-q", "k")),  # same text once '.' is replaced
    (("n" * 60, "x1", "k"), ("n" * 60, "x2", "k")),  # same text once truncated
    (("ns", "p", "fetch-topic"), ("ns", "p", "fetch-fn")),
])
def test_different_children_never_share_a_name(a: tuple[str, str, str], b: tuple[str, str, str]) -> None:
    assert display_name(*a) != display_name(*b)


def test_child_name_uses_the_identity() -> None:
    identity = PipelineIdentity("ns", "p", "uid")
    assert child_name(identity, "k") == display_name("ns", "p", "k")
    with pytest.raises(ValueError, match="uid"):
        PipelineIdentity("ns", "p", "")


def test_retry_token_is_stable_per_uid_child_and_incarnation() -> None:
    ref = Ref(ChildKind.STREAM, "events")
    token = retry_token("uid-1", ref)
    assert token == retry_token("uid-1", ref, 0)
    assert re.fullmatch(r"[0-9a-f]{64}", token)
    others = {retry_token("uid-2", ref), retry_token("uid-1", Ref(ChildKind.STREAM, "work")),
              retry_token("uid-1", Ref(ChildKind.TOPIC, "events")), retry_token("uid-1", ref, 1)}
    assert token not in others
    assert len(others) == 4
    with pytest.raises(ValueError, match="uid"):
        retry_token("", ref)
