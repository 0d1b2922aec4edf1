"""Placeholder: Autoscaling and Compute instance pools are being written."""

from __future__ import annotations

from ocisim.framework import Service


class AutoscalingService(Service):
    name = "autoscaling"
    versions = ("20181001",)


class ComputeService(Service):
    name = "iaas"
    versions = ("20160918",)
