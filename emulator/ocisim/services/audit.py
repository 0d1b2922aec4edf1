"""Placeholder: the AuditService is being written."""

from __future__ import annotations

from ocisim.framework import Service


class AuditService(Service):
    name = "audit"
    versions = ("20190901",)
