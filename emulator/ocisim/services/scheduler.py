"""Placeholder: the SchedulerService is being written."""

from __future__ import annotations

from ocisim.framework import Service


class SchedulerService(Service):
    name = "resource-scheduler"
    versions = ("20240430",)
