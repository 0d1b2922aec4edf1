"""Placeholder: the FunctionsService is being written."""

from __future__ import annotations

from ocisim.framework import Service


class FunctionsService(Service):
    name = "functions"
    versions = ("20181201", "20260325")
