"""A small client for the control API, for tests, benchmarks and the demo."""

from __future__ import annotations

from typing import Any

import httpx


class ControlError(RuntimeError):
    pass


class OcisimControl:
    """Steers an ocisim instance through ``/_ocisim/`` (unsigned; never part of the OCI API)."""

    def __init__(self, base_url: str, timeout: float = 60.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url + "/_ocisim", timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self._http.request(method, path, json=body)
        if response.status_code >= 400:
            raise ControlError(f"{method} {path}: {response.status_code} {response.text}")
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def reset(self, *, keep_identity: bool = True) -> None:
        self.request("POST", "/reset", {"keepIdentity": keep_identity})

    def clock(self) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", "/clock")
        return result

    def freeze(self, at: str | None = None) -> dict[str, Any]:
        result: dict[str, Any] = self.request("POST", "/clock", {"freeze": True, **({"at": at} if at else {})})
        return result

    def advance(self, seconds: float) -> dict[str, Any]:
        result: dict[str, Any] = self.request("POST", "/clock", {"advanceSeconds": seconds})
        return result

    def settings(self, **values: Any) -> dict[str, Any]:
        result: dict[str, Any] = self.request("POST", "/settings", values)
        return result

    def fault(self, **rule: Any) -> dict[str, Any]:
        result: dict[str, Any] = self.request("POST", "/faults", rule)
        return result

    def hold(self, **rule: Any) -> dict[str, Any]:
        """Hold the answers of matching calls after serving them (:mod:`ocisim.holds`); returns the rule."""
        result: dict[str, Any] = self.request("POST", "/holds", rule)
        return result

    def holds(self) -> list[dict[str, Any]]:
        """The hold rules in force, with what each has seen and held."""
        result: list[dict[str, Any]] = self.request("GET", "/holds")
        return result

    def release(self, hold_id: str | None = None) -> None:
        """Withdraw one hold rule (every rule when None): what they held is answered."""
        self.request("DELETE", f"/holds/{hold_id}" if hold_id else "/holds")

    def clear_faults(self) -> None:
        self.request("DELETE", "/faults")

    def add_compartment(self, name: str, parent_id: str | None = None, **extra: Any) -> dict[str, Any]:
        result: dict[str, Any] = self.request("POST", "/compartments",
                                              {"name": name, "parentId": parent_id, **extra})
        return result

    def tenancy(self) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", "/tenancy")
        return result

    def inventory(self) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", "/inventory")
        return result

    def calls(self) -> list[dict[str, Any]]:
        """Calls served since the last reset or :meth:`clear_calls`: one entry per region, service, operation,
        HTTP method and status, with its ``count``."""
        result: list[dict[str, Any]] = self.request("GET", "/calls")["calls"]
        return result

    def clear_calls(self) -> None:
        self.request("DELETE", "/calls")
