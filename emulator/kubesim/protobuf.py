"""Decoding the protobuf bodies that kubectl's imperative commands send (``kubectl create namespace``,
``create configmap``, ``create secret generic``, ``create serviceaccount``).

A Kubernetes protobuf body is ``k8s\\0`` followed by a ``runtime.Unknown`` envelope (typeMeta, raw
object). Only the kinds above are understood, field numbers as in ``k8s.io/api/core/v1``; any other
kind is a 415, as before. Responses stay JSON, which those clients accept.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from typing import Any

MAGIC = b"k8s\x00"


class ProtobufError(ValueError):
    pass


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ProtobufError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def fields(data: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) pairs: ints for varints, bytes for length-delimited fields."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            yield number, value
        elif wire == 2:
            length, pos = _varint(data, pos)
            yield number, data[pos:pos + length]
            pos += length
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")


def _text(value: int | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _entry(value: int | bytes, binary: bool = False) -> tuple[str, str]:
    key, item = "", ""
    for number, part in fields(value if isinstance(value, bytes) else b""):
        if number == 1:
            key = _text(part)
        elif number == 2:
            item = base64.b64encode(part).decode() if binary and isinstance(part, bytes) else _text(part)
    return key, item


def _metadata(data: bytes) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    names = {1: "name", 2: "generateName", 3: "namespace"}
    for number, value in fields(data):
        if number in names and value:
            meta[names[number]] = _text(value)
        elif number in (11, 12):
            key, item = _entry(value)
            meta.setdefault("labels" if number == 11 else "annotations", {})[key] = item
        elif number == 14:
            meta.setdefault("finalizers", []).append(_text(value))
    return meta


def _namespace(data: bytes, obj: dict[str, Any]) -> None:
    for number, value in fields(data):
        if number == 2 and isinstance(value, bytes):
            finalizers = [_text(v) for n, v in fields(value) if n == 1]
            if finalizers:
                obj["spec"] = {"finalizers": finalizers}


def _config_map(data: bytes, obj: dict[str, Any]) -> None:
    for number, value in fields(data):
        if number in (2, 3):
            key, item = _entry(value, binary=number == 3)
            obj.setdefault("data" if number == 2 else "binaryData", {})[key] = item
        elif number == 4:
            obj["immutable"] = bool(value)


def _secret(data: bytes, obj: dict[str, Any]) -> None:
    for number, value in fields(data):
        if number in (2, 4):
            key, item = _entry(value, binary=number == 2)
            obj.setdefault("data" if number == 2 else "stringData", {})[key] = item
        elif number == 3 and value:
            obj["type"] = _text(value)
        elif number == 5:
            obj["immutable"] = bool(value)


def _service_account(data: bytes, obj: dict[str, Any]) -> None:
    for number, value in fields(data):
        if number == 4:
            obj["automountServiceAccountToken"] = bool(value)


_KINDS: dict[tuple[str, str], Callable[[bytes, dict[str, Any]], None]] = {
    ("v1", "Namespace"): _namespace,
    ("v1", "ConfigMap"): _config_map,
    ("v1", "Secret"): _secret,
    ("v1", "ServiceAccount"): _service_account,
}


def decode(body: bytes) -> dict[str, Any]:
    """The JSON form of a protobuf-encoded object of a supported kind; ProtobufError otherwise."""
    if not body.startswith(MAGIC):
        raise ProtobufError("not a Kubernetes protobuf body")
    api_version = kind = ""
    raw = b""
    for number, value in fields(body[len(MAGIC):]):
        if number == 1 and isinstance(value, bytes):
            for sub, part in fields(value):
                if sub == 1:
                    api_version = _text(part)
                elif sub == 2:
                    kind = _text(part)
        elif number == 2 and isinstance(value, bytes):
            raw = value
    decoder = _KINDS.get((api_version, kind))
    if decoder is None:
        raise ProtobufError(f"protobuf bodies of {api_version} {kind} are not supported")
    obj: dict[str, Any] = {"apiVersion": api_version, "kind": kind}
    for number, value in fields(raw):
        if number == 1 and isinstance(value, bytes):
            obj["metadata"] = _metadata(value)
    decoder(raw, obj)
    return obj
