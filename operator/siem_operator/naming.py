"""Deterministic OCI names and create retry tokens for a pipeline's children.

A child is found again after a crash by its display name *and* the pipeline-uid freeform tag, so the
name must be a pure function of what does not change: the SiemPipeline's namespace and name and the
child's logical key. Names are built only from ``[a-z0-9-]`` and kept within :data:`MAX_NAME_LENGTH`,
which every kind accepts (ONS topic names allow letters, digits, ``-`` and ``_`` only; Functions
names are the strictest on length). A short hash of the full (namespace, name, key) always ends the
name, so two pipelines whose names differ only in what truncation or character replacement removed
(``a-b/c`` and ``a/b-c``) still get different names.

The create retry token (``opc-retry-token``, at most 64 characters, kept by OCI for 24 hours) is
derived from the object's uid, the child's reference and its *incarnation*: the same after a crash,
so a create re-sent after a lost response returns the first resource instead of a duplicate, and
different once the operator deliberately re-creates a child that disappeared (OCI would otherwise
answer the new create with the deleted resource's response).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from typing import Final

from siem_operator.children import Ref

#: the prefix of every name, so people can tell the operator's resources from others
PREFIX: Final = "siem"
#: fits every kind's display-name limit
MAX_NAME_LENGTH: Final = 63
HASH_LENGTH: Final = 8
RETRY_TOKEN_LENGTH: Final = 64

_UNSAFE = re.compile(r"[^a-z0-9-]+")


@dataclasses.dataclass(frozen=True)
class PipelineIdentity:
    """Who a child belongs to: the SiemPipeline's namespace, name and uid."""

    namespace: str
    name: str
    uid: str

    def __post_init__(self) -> None:
        for field in ("namespace", "name", "uid"):
            if not getattr(self, field):
                raise ValueError(f"a pipeline identity needs a {field}")


def _slug(text: str) -> str:
    return _UNSAFE.sub("-", text.lower()).strip("-")


def display_name(namespace: str, name: str, key: str) -> str:
    """``siem-<namespace>-<name>-<key>-<hash8>``, shortened in the middle when too long."""
    digest = hashlib.sha256(f"{namespace}/{name}/{key}".encode()).hexdigest()[:HASH_LENGTH]
    key_part = _slug(key)[:20]
    budget = MAX_NAME_LENGTH - len(PREFIX) - len(key_part) - len(digest) - 3  # three separators
    middle = _slug(f"{namespace}-{name}")[:budget].strip("-")
    parts = [PREFIX, middle, key_part, digest]
    return "-".join(p for p in parts if p)


def child_name(identity: PipelineIdentity, key: str) -> str:
    return display_name(identity.namespace, identity.name, key)


def retry_token(uid: str, ref: Ref, incarnation: int = 0) -> str:
    """The ``opc-retry-token`` of creating ``ref`` for the object ``uid`` (64 hex characters)."""
    if not uid:
        raise ValueError("a retry token needs the object's uid")
    if incarnation < 0:
        raise ValueError("incarnation must be >= 0")
    material = f"{uid}/{ref.kind.value}/{ref.key}/{incarnation}"
    return hashlib.sha256(material.encode()).hexdigest()[:RETRY_TOKEN_LENGTH]
