"""CEL rules as kubesim evaluates them: core CEL through cel-python, transition rules, and the common
string functions of the Kubernetes CEL library."""

from __future__ import annotations

from typing import Any

import pytest

from kubesim.schema import validate_cel


def rules(*pairs: tuple[str, str]) -> dict[str, Any]:
    return {"type": "object", "x-kubernetes-validations": [{"rule": r, "message": m} for r, m in pairs]}


@pytest.mark.parametrize(("rule", "value", "ok"), [
    ("self.name.lowerAscii() == 'abc'", {"name": "AbC"}, True),
    ("self.name.upperAscii() == 'ABC'", {"name": "abc"}, True),
    ("self.name.trim() == 'x'", {"name": "  x "}, True),
    ("self.name.split('.').size() == 3", {"name": "a.b.c"}, True),
    ("self.name.split('.', 2) == ['a', 'b.c']", {"name": "a.b.c"}, True),
    ("self.name.replace('-', '_') == 'a_b'", {"name": "a-b"}, True),
    ("self.name.indexOf('b') == 1 && self.name.lastIndexOf('a') == 2", {"name": "aba"}, True),
    ("self.name.substring(1, 3) == 'bc' && self.name.charAt(0) == 'a'", {"name": "abcd"}, True),
    ("self.parts.join('/') == 'x/y'", {"parts": ["x", "y"]}, True),
    ("self.regions.all(r, r.matches('^[a-z]+-[a-z]+-[0-9]+$'))", {"regions": ["us-ashburn-1", "bad"]}, False),
    ("has(self.hec) != has(self.syslog)", {"hec": {}, "syslog": {}}, False),
])
def test_rules(rule: str, value: dict[str, Any], ok: bool) -> None:
    causes = validate_cel(value, None, rules((rule, "nope")), "spec")
    assert (causes == []) is ok, causes
    if not ok:
        assert causes[0].field == "spec"
        assert causes[0].message == 'Invalid value: "object": nope'


def test_transition_rules_need_an_old_value() -> None:
    schema = {"type": "object", "properties": {"id": {"type": "string", "x-kubernetes-validations": [
        {"rule": "self == oldSelf", "message": "id is immutable"}]}}}
    assert validate_cel({"id": "a"}, None, schema, "spec") == []
    assert validate_cel({"id": "a"}, {"id": "a"}, schema, "spec") == []
    assert validate_cel({"id": "a"}, {}, schema, "spec") == []  # newly set on update: no old value
    [cause] = validate_cel({"id": "b"}, {"id": "a"}, schema, "spec")
    assert cause.render() == 'spec.id: Invalid value: "b": id is immutable'


def test_an_unknown_function_is_reported() -> None:
    [cause] = validate_cel({"ip": "10.0.0.1"}, None, rules(("isIP(self.ip)", "must be an IP")), "spec")
    assert "rule compile/evaluation error" in cause.message or "rule evaluation error" in cause.message
