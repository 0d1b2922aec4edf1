"""Placeholder: the NotificationsService is being written."""

from __future__ import annotations

from ocisim.framework import Service


class NotificationsService(Service):
    name = "notification"
    versions = ("20181201",)
