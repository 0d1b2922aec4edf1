"""One adapter per OCI kind a ``SiemPipeline`` owns: observe / create / differences / update / delete.

``build_adapters(factory, region)`` gives every kind's adapter for one region, each making its calls through
clients of the one :class:`~siem_pipeline.oci_clients.OciClientFactory`. :data:`ADAPTERS` maps each
:class:`~siem_operator.children.ChildKind` to its class. The shared flow (identity, idempotent create,
conflicts, confirmed deletion) lives in :mod:`siem_operator.adapters.base`; each kind's module documents its
properties (the :attr:`~siem_operator.children.Desired.properties` keys, in the SDK's snake_case), which of
them change in place, and how its lifecycle states map to phases. Errors of their own are in
:mod:`siem_operator.adapters.errors`.
"""

from __future__ import annotations

from typing import Final

from siem_operator.adapters.autoscaling import AutoscalingConfigurationAdapter
from siem_operator.adapters.base import OciAdapter
from siem_operator.adapters.errors import (
    AdapterError,
    AdoptionTargetMissing,
    ChildBusy,
    ChildConflict,
    DeletionNotConfirmed,
)
from siem_operator.adapters.events import EventRuleAdapter
from siem_operator.adapters.functions import ApplicationAdapter, FunctionAdapter
from siem_operator.adapters.notifications import SubscriptionAdapter, TopicAdapter
from siem_operator.adapters.schedule import ScheduleAdapter
from siem_operator.adapters.streaming import StreamAdapter, StreamPoolAdapter
from siem_operator.adapters.vault_secret import VaultSecretAdapter
from siem_operator.children import Adapter, ChildKind
from siem_pipeline.oci_clients import OciClientFactory

ADAPTERS: Final[dict[ChildKind, type[OciAdapter]]] = {cls.kind: cls for cls in (
    VaultSecretAdapter, StreamPoolAdapter, StreamAdapter, ApplicationAdapter, FunctionAdapter, TopicAdapter,
    SubscriptionAdapter, EventRuleAdapter, ScheduleAdapter, AutoscalingConfigurationAdapter,
)}
assert set(ADAPTERS) == set(ChildKind), "every ChildKind needs an adapter"


def build_adapters(factory: OciClientFactory, region: str) -> dict[ChildKind, Adapter]:
    """Every kind's adapter for ``region``; clients are built (and cached) by ``factory`` on first use."""
    return {kind: cls(factory, region) for kind, cls in ADAPTERS.items()}


__all__ = [
    "ADAPTERS",
    "AdapterError",
    "AdoptionTargetMissing",
    "ChildBusy",
    "ChildConflict",
    "DeletionNotConfirmed",
    "OciAdapter",
    "build_adapters",
]
