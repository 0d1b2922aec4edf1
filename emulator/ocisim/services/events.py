"""Placeholder: the EventsService is being written."""

from __future__ import annotations

from ocisim.framework import Service


class EventsService(Service):
    name = "events"
    versions = ("20181201",)
