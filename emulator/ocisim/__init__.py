"""ocisim: a local OCI that the unmodified ``oci`` SDK and the OCI CLI talk to over HTTP."""

from __future__ import annotations

from ocisim.app import OcisimServer

__all__ = ["OcisimServer"]
