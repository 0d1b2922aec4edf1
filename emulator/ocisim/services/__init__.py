"""The emulated OCI services, in the order they are mounted and started."""

from __future__ import annotations

from ocisim.framework import Service
from ocisim.services.audit import AuditService
from ocisim.services.autoscaling import AutoscalingService, ComputeService
from ocisim.services.events import EventsService
from ocisim.services.functions import FunctionsService
from ocisim.services.identity import IdentityService
from ocisim.services.notifications import NotificationsService
from ocisim.services.scheduler import SchedulerService
from ocisim.services.streaming import StreamingService
from ocisim.services.vault import SecretsService, VaultsService

ALL_SERVICES: tuple[type[Service], ...] = (
    IdentityService,
    AuditService,
    StreamingService,
    NotificationsService,
    EventsService,
    FunctionsService,
    SchedulerService,
    AutoscalingService,
    ComputeService,
    VaultsService,
    SecretsService,
)

#: URL segment of each service (``http://host:port/<region>/<service>/<version>/…``).
SERVICE_NAMES: tuple[str, ...] = tuple(s.name for s in ALL_SERVICES)
