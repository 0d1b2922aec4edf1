"""Contract checks: what ocisim answers must be what the SDK's own models describe.

The SDK deserializes leniently (unknown keys dropped, missing ones None), so it never notices
drift. These helpers make the raw JSON face the model's ``attribute_map`` directly: no key the
model does not know, and every key the real service always returns.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import oci
import requests

from ocisim import OcisimServer


def raw_call(server: OcisimServer, config: dict[str, Any], method: str, service: str, path: str, *,
             region: str | None = None, body: Any = None, params: dict[str, Any] | None = None) -> requests.Response:
    """A signed request with the SDK's own signer, returning the raw response (no model in between)."""
    signer = oci.signer.Signer(config["tenancy"], config["user"], config["fingerprint"],
                               private_key_file_location=config.get("key_file"),
                               private_key_content=config.get("key_content"))
    url = f"{server.endpoint(region or server.home_region, service)}{path}"
    return requests.request(method, url, json=body, params=params, auth=signer, timeout=30)


def assert_matches_model(data: dict[str, Any], model: type, *, optional: Iterable[str] = ()) -> None:
    """``data`` uses only keys of ``model`` and has all of them except the ``optional`` ones.

    ``optional`` names (in the model's snake_case) the attributes the real service may omit.
    """
    attribute_map: dict[str, str] = model().attribute_map
    known = set(attribute_map.values())
    unknown = set(data) - known
    assert not unknown, f"{model.__name__}: keys the SDK model does not have: {sorted(unknown)}"
    skip = {attribute_map[name] for name in optional}
    absent = sorted(k for k in known - skip if k not in data)
    assert not absent, f"{model.__name__}: keys the real service always returns are missing: {absent}"


def assert_all_match(items: list[dict[str, Any]], model: type, *, optional: Iterable[str] = ()) -> None:
    assert isinstance(items, list)
    optional = tuple(optional)
    for item in items:
        assert_matches_model(item, model, optional=optional)
