"""What a Kubernetes API URL addresses: ``/api/v1/...`` and ``/apis/{group}/{version}/...``."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class Target:
    """What a URL addresses."""

    group: str
    version: str
    plural: str
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None


def parse_path(path: str) -> Target | None:
    """``/api/v1/...`` or ``/apis/g/v/...`` → a target; namespaces themselves included."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    if rest and rest[0] == "watch":  # the deprecated /watch/ prefix
        rest = rest[1:]
    if not rest:
        return None
    if rest[0] == "namespaces" and len(rest) <= 3 and (len(rest) < 3 or rest[2] in ("status", "finalize")):
        return Target(group, version, "namespaces", None, rest[1] if len(rest) > 1 else None,
                      rest[2] if len(rest) > 2 else None)
    namespace = None
    if rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    return Target(group, version, rest[0], namespace, rest[1] if len(rest) > 1 else None,
                  "/".join(rest[2:]) or None)
