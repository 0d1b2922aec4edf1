"""Events rule conditions, table-driven: the matching rules of OCI's "Matching Events with Filters"."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from ocisim.eventmatch import ConditionError, matches, parse_condition

#: The reference event of OCI's documentation (an Object Storage bucket deletion).
EVENT: dict[str, Any] = {
    "cloudEventsVersion": "0.1",
    "eventID": "unique-id",
    "eventType": "com.oraclecloud.objectstorage.deletebucket",
    "source": "objectstorage",
    "eventTypeVersion": "1.0",
    "eventTime": "2019-01-10T21:19:24Z",
    "contentType": "application/json",
    "extensions": {"compartmentId": "ocid1.compartment.oc1..aaaa"},
    "data": {
        "compartmentId": "ocid1.compartment.oc1..aaaa",
        "compartmentName": "example_name",
        "resourceName": "my_bucket",
        "resourceId": "ocid1.bucket.oc1..bbbb",
        "availabilityDomain": "NfHZ:PHX-AD-2",
        "freeformTags": {"Department": "Finance"},
        "definedTags": {"Operations": {"CostCenter": "42"}},
        "additionalDetails": {"namespace": "example_namespace", "publicAccessType": "NoPublicAccess",
                              "eTag": "f8ffb6e9", "size": 42, "versioned": False, "labels": ["a", "b"],
                              "owner": None},
    },
}


@pytest.mark.parametrize(("condition", "expected"), [
    ({}, True),
    ({"eventType": "com.oraclecloud.objectstorage.deletebucket"}, True),
    ({"eventType": "com.oraclecloud.objectstorage.createbucket"}, False),
    ({"eventType": ["com.oraclecloud.objectstorage.createbucket", "com.oraclecloud.objectstorage.deletebucket"]},
     True),
    # event types are compared case-insensitively, other values exactly
    ({"eventType": "com.oraclecloud.ObjectStorage.DeleteBucket"}, True),
    ({"data": {"resourceName": "MY_BUCKET"}}, False),
    # every listed field must exist, at the same nesting
    ({"eventType": "com.oraclecloud.objectstorage.deletebucket", "data": {"resourceName": "my_bucket"}}, True),
    ({"data": {"additionalDetails": {"publicAccessType": "NoPublicAccess"}}}, True),
    ({"data": {"additionalDetails": {"publicAccessType": "ObjectRead"}}}, False),
    ({"data": {"resourceName": "other_bucket"}}, False),
    ({"resourceName": "my_bucket"}, False),
    ({"data": {"publicAccessType": "NoPublicAccess"}}, False),
    ({"data": {"missing": "*"}}, False),
    ({"data": {"resourceName": {"nested": "x"}}}, False),
    # arrays mean any of
    ({"data": {"resourceName": ["bucket1", "my_bucket"]}}, True),
    ({"data": {"resourceName": ["bucket1", "bucket2"]}}, False),
    # wildcards at the start, middle and end; the period is literal
    ({"data": {"resourceName": "my_*"}}, True),
    ({"data": {"resourceName": "*_bucket"}}, True),
    ({"data": {"resourceName": "m*t"}}, True),
    ({"data": {"resourceName": "*bucket*"}}, True),
    ({"data": {"resourceName": "your_*"}}, False),
    ({"eventType": "com.oraclecloud.objectstorage.*"}, True),
    ({"eventType": "com.oraclecloud.objectstorage.*bucket"}, True),
    ({"eventType": "com.oraclecloud.streaming.*"}, False),
    ({"eventType": "com?oraclecloud.objectstorage.deletebucket"}, False),
    ({"source": "objectstorag."}, False),
    # a lone asterisk matches any value, objects included, but never null
    ({"data": {"freeformTags": "*"}}, True),
    ({"data": {"additionalDetails": {"owner": "*"}}}, False),
    ({"data": {"freeformTags": {"Department": "Finance"}}}, True),
    ({"data": {"freeformTags": {"Department": "Fin*"}}}, True),
    ({"data": {"definedTags": {"Operations": {"CostCenter": ["41", "42"]}}}}, True),
    # an array in the event matches if any of its elements does
    ({"data": {"additionalDetails": {"labels": "b"}}}, True),
    ({"data": {"additionalDetails": {"labels": ["c", "a"]}}}, True),
    ({"data": {"additionalDetails": {"labels": "c"}}}, False),
    # numbers and booleans compare by their JSON text
    ({"data": {"additionalDetails": {"size": "42"}}}, True),
    ({"data": {"additionalDetails": {"size": 42}}}, True),
    ({"data": {"additionalDetails": {"size": "4*"}}}, True),
    ({"data": {"additionalDetails": {"versioned": False}}}, True),
    ({"data": {"additionalDetails": {"versioned": "true"}}}, False),
    # the documented grammar has no "any"/"all" combinators: a list of sub-filters is refused
    ({"any": [{"eventType": "com.oraclecloud.objectstorage.deletebucket"}]}, None),
])
def test_condition_matching(condition: dict[str, Any], expected: bool | None) -> None:
    if expected is None:
        with pytest.raises(ConditionError):
            parse_condition(orjson.dumps(condition).decode())
        return
    parsed = parse_condition(orjson.dumps(condition).decode())
    assert matches(parsed, EVENT) is expected


@pytest.mark.parametrize(("text", "message"), [
    ("", "not valid JSON"),
    ("{", "not valid JSON"),
    ("[]", "must be a JSON object"),
    ('"eventType"', "must be a JSON object"),
    ('{"eventType": null}', "not null"),
    ('{"eventType": []}', "empty array"),
    ('{"eventType": [{"a": "b"}]}', "may only list"),
    ('{"data": {"": "x"}}', "empty field name"),
    ("{" * 40 + "}" * 40, "not valid JSON"),
])
def test_invalid_conditions_say_why(text: str, message: str) -> None:
    with pytest.raises(ConditionError, match=message):
        parse_condition(text)


def test_condition_must_be_a_string_and_not_too_deep() -> None:
    with pytest.raises(ConditionError, match="must be a string"):
        parse_condition({"eventType": "x"})
    deep = '{"a": ' * 20 + '"x"' + "}" * 20
    with pytest.raises(ConditionError, match="nests deeper"):
        parse_condition(deep)
    with pytest.raises(ConditionError, match="at most"):
        parse_condition('{"a": "' + "x" * 20_000 + '"}')


def test_matching_against_a_non_object_value_or_event() -> None:
    assert matches({"data": {"x": "1"}}, {"data": "not an object"}) is False
    assert matches({}, {}) is True
    assert matches({"eventType": "*"}, {"eventType": None}) is False
