"""OCIDs shaped like the real ones: ``ocid1.<type>.oc1.<region-key>.<unique>``."""

from __future__ import annotations

import secrets
import string

_ALPHABET = string.ascii_lowercase + "234567"


def new_ocid(resource_type: str, region_key: str = "") -> str:
    """A fresh OCID; ``region_key`` is empty for global resources (tenancy, users, compartments)."""
    unique = "".join(secrets.choice(_ALPHABET) for _ in range(52))
    return f"ocid1.{resource_type}.oc1.{region_key.lower()}.aaaaaaaa{unique}"


def ocid_type(ocid: str) -> str | None:
    """The resource type named in an OCID, or None if the text is not an OCID."""
    parts = ocid.split(".")
    if len(parts) < 5 or parts[0] != "ocid1":
        return None
    return parts[1]
