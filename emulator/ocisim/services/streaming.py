"""Placeholder: the StreamingService is being written."""

from __future__ import annotations

from ocisim.framework import Service


class StreamingService(Service):
    name = "streaming"
    versions = ("20180418",)
