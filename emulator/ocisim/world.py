"""The emulated world: one tenancy, its regions, identities and the services' state.

Identity is global in OCI (one tenancy, one compartment tree, replicated to every subscribed
region); everything else lives in a region. Services keep their own per-region state and reach
each other only through the :class:`Hub`, so a rule in Events can publish to a topic, a topic can
invoke a function, and a schedule can fire, without the services importing one another.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ocisim import errors
from ocisim.clock import Clock
from ocisim.faults import FaultInjector
from ocisim.ocid import new_ocid

if TYPE_CHECKING:
    from ocisim.auth import Keyring
    from ocisim.framework import ApiCallRecord

#: Real OCI regions ocisim knows, by name → three-letter key.
KNOWN_REGIONS: dict[str, str] = {
    "us-ashburn-1": "IAD",
    "us-phoenix-1": "PHX",
    "us-sanjose-1": "SJC",
    "us-chicago-1": "ORD",
    "ca-toronto-1": "YYZ",
    "ca-montreal-1": "YUL",
    "sa-saopaulo-1": "GRU",
    "eu-frankfurt-1": "FRA",
    "eu-amsterdam-1": "AMS",
    "eu-zurich-1": "ZRH",
    "eu-paris-1": "CDG",
    "uk-london-1": "LHR",
    "ap-tokyo-1": "NRT",
    "ap-osaka-1": "KIX",
    "ap-sydney-1": "SYD",
    "ap-mumbai-1": "BOM",
    "ap-singapore-1": "SIN",
    "me-jeddah-1": "JED",
}

DEFAULT_REGIONS = ("us-ashburn-1", "us-phoenix-1", "eu-frankfurt-1")


@dataclasses.dataclass
class Settings:
    """Knobs of the emulated world, changed through the control API."""

    #: how long CREATING/UPDATING/DELETING last, in (virtual) seconds
    provisioning_delay: float = 1.0
    #: seconds between an audit event's eventTime and the moment ListEvents can return it
    audit_processing_delay: float = 0.0
    #: random extra delay, uniformly 0..jitter seconds, added per event
    audit_processing_jitter: float = 0.0
    #: events per ListEvents page (the real service reports pages of about 20,000)
    audit_page_size: int = 1000
    #: audit every signed call made to ocisim, as OCI does
    audit_api_calls: bool = True
    #: enforce Streaming's per-partition throughput limits (1 MB/s in, 5 GET/s per group)
    streaming_limits: bool = False
    #: enforce ONS's 60 publishes per minute per topic
    ons_publish_limit: bool = False
    #: Streaming partitions per region (OCI's default service limit; raised like a limit increase)
    stream_partition_limit: int = 200
    #: reject requests whose Date header is more than this many seconds off real time
    max_clock_skew: float = 300.0

    def update(self, values: dict[str, Any]) -> None:
        names = {f.name: f for f in dataclasses.fields(self)}
        for key, value in values.items():
            snake = "".join("_" + c.lower() if c.isupper() else c for c in key)
            field = names.get(snake)
            if field is None:
                raise errors.invalid(f"Unknown setting '{key}'.")
            current = getattr(self, snake)
            if isinstance(current, bool):
                if not isinstance(value, bool):
                    raise errors.invalid(f"Setting '{key}' must be a boolean.")
            elif isinstance(current, int | float):
                if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                    raise errors.invalid(f"Setting '{key}' must be a non-negative number.")
                value = type(current)(value)
            setattr(self, snake, value)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            head, *rest = f.name.split("_")
            out[head + "".join(p.title() for p in rest)] = getattr(self, f.name)
        return out


@dataclasses.dataclass
class Region:
    name: str
    key: str
    is_home: bool = False
    status: str = "READY"


@dataclasses.dataclass
class Compartment:
    id: str
    name: str
    description: str
    compartment_id: str | None  # parent; None for the root (the tenancy)
    time_created: dt.datetime
    lifecycle_state: str = "ACTIVE"
    is_accessible: bool = True
    freeform_tags: dict[str, str] = dataclasses.field(default_factory=dict)
    defined_tags: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class ApiKey:
    key_id: str  # "<tenancy>/<user>/<fingerprint>"
    fingerprint: str
    public_pem: str
    time_created: dt.datetime
    lifecycle_state: str = "ACTIVE"


@dataclasses.dataclass
class User:
    id: str
    name: str
    description: str
    email: str | None
    time_created: dt.datetime
    lifecycle_state: str = "ACTIVE"
    api_keys: list[ApiKey] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class Principal:
    """Who signed a request."""

    kind: str  # "user" | "resource"
    tenancy_id: str
    principal_id: str  # user OCID, or the resource's OCID (a function)
    name: str
    compartment_id: str | None = None  # the resource's compartment, for resource principals
    resource_type: str | None = None
    auth_type: str = "natv"


InternalCall = Callable[..., Awaitable[Any]]


class World:
    """All state of one ocisim instance."""

    def __init__(self, *, seed: int = 0, regions: tuple[str, ...] = DEFAULT_REGIONS,
                 tenancy_name: str = "ocisim") -> None:
        self.lock = threading.RLock()
        self.clock = Clock()
        #: what ``reset`` restores the settings to (``ocisim serve`` flags change it)
        self.base_settings = Settings()
        self.settings = dataclasses.replace(self.base_settings)
        self.seed = seed
        self.rng = random.Random(seed)
        self.faults = FaultInjector(seed)
        self.tenancy_name = tenancy_name
        self._initial_regions = regions
        #: trusted keys; set by the server that serves this world
        self.keyring: Keyring | None = None
        #: where the server listens, e.g. ``http://127.0.0.1:8642`` (set once it is bound)
        self.base_url = ""
        #: receives one record per signed call; set by the Audit service
        self.audit_sink: Callable[[ApiCallRecord], None] | None = None
        #: hooks one service offers the others, by name (see ``provide``/``call``)
        self._hooks: dict[str, InternalCall] = {}
        #: reset callbacks of services and other stateful parts
        self._resetters: list[Callable[[], None]] = []
        self.tenancy_id = ""
        self.regions: dict[str, Region] = {}
        self.compartments: dict[str, Compartment] = {}
        self.users: dict[str, User] = {}
        self.reset(keep_identity=False)

    # -- services talking to each other -------------------------------------------------------

    def provide(self, name: str, fn: InternalCall) -> None:
        """Offer ``fn`` to other services under ``name`` (e.g. ``"functions.invoke"``)."""
        self._hooks[name] = fn

    def has(self, name: str) -> bool:
        return name in self._hooks

    def replace_hook(self, name: str, fn: InternalCall | None) -> InternalCall | None:
        """Serve ``fn`` as hook ``name`` (``None`` withdraws it) and return what was there, so a test
        can stand in for a service and put the real one back (``ocisim.testing.swapped_hook``)."""
        previous = self._hooks.pop(name, None)
        if fn is not None:
            self._hooks[name] = fn
        return previous

    async def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call a hook another service provides; raises if that service is not served."""
        fn = self._hooks.get(name)
        if fn is None:
            raise errors.OciError(501, "MethodNotImplemented", f"ocisim has no '{name}'")
        return await fn(*args, **kwargs)

    def on_reset(self, fn: Callable[[], None]) -> None:
        self._resetters.append(fn)

    # -- lifecycle ---------------------------------------------------------------------------

    def reset(self, *, keep_identity: bool = True) -> None:
        """Forget every resource; keep the tenancy, its users and keys unless told otherwise."""
        with self.lock:
            self.clock.reset()
            self.settings = dataclasses.replace(self.base_settings)
            self.rng = random.Random(self.seed)
            self.faults.reset(self.seed)
            if not keep_identity or not self.tenancy_id:
                self.tenancy_id = new_ocid("tenancy")
                self.regions = {}
                for i, name in enumerate(self._initial_regions):
                    self.subscribe_region(name, is_home=(i == 0))
                self.compartments = {
                    self.tenancy_id: Compartment(
                        id=self.tenancy_id, name=self.tenancy_name, description="root compartment",
                        compartment_id=None, time_created=self.clock.now()),
                }
                self.users = {}
            else:
                root = self.compartments[self.tenancy_id]
                self.compartments = {self.tenancy_id: root}
            for fn in self._resetters:
                fn()

    # -- regions --------------------------------------------------------------------------------

    @property
    def home_region(self) -> Region:
        return next(r for r in self.regions.values() if r.is_home)

    def subscribe_region(self, name: str, *, is_home: bool = False) -> Region:
        key = KNOWN_REGIONS.get(name)
        if key is None:
            raise errors.invalid(f"Unknown region '{name}'.")
        region = self.regions.get(name)
        if region is None:
            region = Region(name=name, key=key, is_home=is_home)
            self.regions[name] = region
        return region

    def region(self, name: str) -> Region:
        """The subscribed region ``name``; others answer 401 as a real unsubscribed region does."""
        region = self.regions.get(name)
        if region is None:
            if name in KNOWN_REGIONS:
                raise errors.not_authenticated(f"The tenancy is not subscribed to region {name}.")
            raise errors.no_such_operation("ANY", f"/{name}")
        return region

    # -- compartments ---------------------------------------------------------------------------

    def add_compartment(self, name: str, parent_id: str | None = None, description: str = "",
                        lifecycle_state: str = "ACTIVE") -> Compartment:
        parent_id = parent_id or self.tenancy_id
        parent = self.compartments.get(parent_id)
        if parent is None:
            raise errors.OciError(400, "RelatedResourceNotAuthorizedOrNotFound",
                                  f"Parent compartment {parent_id} not found.")
        for c in self.compartments.values():
            if c.compartment_id == parent_id and c.name == name and c.lifecycle_state != "DELETED":
                raise errors.already_exists(f"A compartment named '{name}' already exists in the parent.")
        comp = Compartment(id=new_ocid("compartment"), name=name, description=description or name,
                           compartment_id=parent_id, time_created=self.clock.now(),
                           lifecycle_state=lifecycle_state)
        self.compartments[comp.id] = comp
        return comp

    def compartment(self, compartment_id: str) -> Compartment:
        """The compartment (or the tenancy root), or 404 NotAuthorizedOrNotFound."""
        comp = self.compartments.get(compartment_id)
        if comp is None or comp.lifecycle_state == "DELETED":
            raise errors.not_found()
        return comp

    def require_compartment(self, compartment_id: object, field: str = "compartmentId") -> Compartment:
        """Validate a ``compartmentId`` given in a request: 400 when missing or malformed, 404 unknown."""
        if compartment_id is None or compartment_id == "":
            raise errors.missing(field)
        if not isinstance(compartment_id, str):
            raise errors.invalid(f"'{field}' must be a string.")
        comp = self.compartment(compartment_id)
        if comp.lifecycle_state != "ACTIVE":
            raise errors.OciError(404, "NotAuthorizedOrNotFound",
                                  f"Compartment {compartment_id} is {comp.lifecycle_state}.")
        return comp

    def compartment_path(self, compartment_id: str) -> list[Compartment]:
        """Root first, ending at the compartment."""
        path: list[Compartment] = []
        current: str | None = compartment_id
        while current is not None:
            comp = self.compartments[current]
            path.append(comp)
            current = comp.compartment_id
        return list(reversed(path))

    def is_within(self, compartment_id: str, ancestor_id: str) -> bool:
        """Whether ``compartment_id`` is ``ancestor_id`` or one of its descendants."""
        current: str | None = compartment_id
        while current is not None:
            if current == ancestor_id:
                return True
            comp = self.compartments.get(current)
            current = comp.compartment_id if comp else None
        return False

    # -- users -------------------------------------------------------------------------------------

    def add_user(self, name: str, description: str = "", email: str | None = None) -> User:
        for u in self.users.values():
            if u.name == name:
                raise errors.already_exists(f"A user named '{name}' already exists.")
        user = User(id=new_ocid("user"), name=name, description=description or name, email=email,
                    time_created=self.clock.now())
        self.users[user.id] = user
        return user
