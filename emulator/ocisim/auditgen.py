"""Synthetic but realistic OCI Audit activity, generated fast and reproducibly.

The pipeline under test must survive what a real tenancy's audit log holds, so the generator mixes:

- every event type the CIS OCI Foundations Benchmark §4 asks notifications for, in the lowercase
  form the CIS tooling matches (``com.oraclecloud.identitycontrolplane.createuser``), and the
  CamelCase API form audit records usually carry (``com.oraclecloud.ComputeApi.LaunchInstance``,
  ``com.oraclecloud.EventsService.DeleteRule``), reads (``List*``/``Get*``) far more than writes;
- several kinds of callers: API-key users (SDK, CLI, Terraform), console sessions, a user acting
  through a service (``opc-obo-token``), instance and resource principals (``ST$`` session tokens in
  ``identity.credentials``), ``curl/8.0`` with a ``Bearer`` token, a Swift client with ``Basic``
  credentials, and Cloud Guard itself;
- the credentials real audit records keep and a SIEM pipeline must redact: ``Authorization``
  headers, the ``opc-principal`` JSON string, ``opc-obo-token``;
- sizes from about 1 KB to more than 20 KB (a policy with hundreds of statements, an instance with
  ``user_data``, a large list payload), and a few percent of failed calls;
- the patterns public detections look for: five or more ``LaunchInstance``/``TerminateInstance``
  from one IP within ten minutes, a ``DeleteRule``, a short user agent, an ``/opc/v1`` instance
  metadata URL, a 403.

Determinism: a generation is a pure function of its :class:`GenerationSpec`; the random stream is
seeded from every field of it, so the same request gives byte-identical events (same ``eventId``s)
while two requests that differ in anything (window, count, seed, compartments) give disjoint ids.

Speed and memory: the constant parts of an event (an actor's identity, credential headers and
``opc-principal``, resource tags, the large payloads) are serialized once and *shared*: an event is
kept as the pieces of its JSON text, its own small pieces written by one f-string and the shared
ones referenced. About 20 µs and 2 KB of memory per event (listed size: 5 KB on average), so a
million events take well under a minute and about 2 GB.
"""

from __future__ import annotations

import base64
import bisect
import dataclasses
import datetime as dt
import email.utils
import random
import re
from collections.abc import Sequence
from typing import Any, NamedTuple

import orjson

from ocisim import errors
from ocisim.clock import parse_rfc3339

#: The largest generation one request may ask for (about 3 GB of events).
MAX_COUNT = 2_000_000

#: Audit ``source`` of each ocisim service, by its URL name: also the middle of ``eventType``
#: (``com.oraclecloud.<source>.<Operation>``). Identity, Compute and Events are taken from real
#: records (Oracle's documented ``com.oraclecloud.ComputeApi.GetInstance``,
#: ``com.oraclecloud.identityControlPlane.CreateUser``, a published ``_Audit`` record of
#: ``com.oraclecloud.EventsService.GetRule``); the others follow the services' own short names
#: (unverified).
SERVICE_SOURCES: dict[str, str] = {
    "identity": "identityControlPlane",
    "iaas": "ComputeApi",
    "events": "EventsService",
    "audit": "audit",
    "streaming": "streaming",
    "notification": "notification",
    "functions": "functions",
    "resource-scheduler": "resourcescheduler",
    "autoscaling": "autoscaling",
    "vaults": "vaultmng",
    "secrets": "secretretrieval",
}

#: Size classes: extra payload (bytes, roughly) attached to an event beyond its ~1-3 KB envelope.
SIZE_CLASSES: dict[str, tuple[int, int]] = {
    "base": (0, 0),
    "medium": (1_500, 4_000),
    "large": (8_000, 14_000),
    "huge": (20_000, 40_000),
}
DEFAULT_SIZES: dict[str, float] = {"base": 0.8, "medium": 0.14, "large": 0.045, "huge": 0.015}

_READ_KINDS = frozenset({"get", "list"})
#: The RFC 4122 variant nibble (8, 9, a or b) for a random hex digit.
_VARIANT = {d: "89ab"[int(d, 16) & 3] for d in "0123456789abcdef"}


class Operation(NamedTuple):
    event_type: str
    source: str
    name: str  # the eventName, CamelCase
    method: str
    path: str  # below the host; ``{id}`` is the resource, ``{parent}`` its parent
    resource: str | None  # OCID type of the resource acted on
    host: str  # first label of the API host
    kind: str  # get | list | create | update | delete | action | login | problem
    weight: float
    parent: str | None = None


def _api(source: str, name: str, method: str, path: str, resource: str | None, host: str, kind: str,
         weight: float) -> Operation:
    return Operation(f"com.oraclecloud.{source}.{name}", source, name, method, path, resource, host, kind, weight)


#: CIS §4 resources: (event-type prefix, resource name, collection path, OCID type, host, verbs, parent type).
#: Verbs: c create, u update, d delete, D delete reported as ``….end``, m changeCompartment.
_CIS_RESOURCES: tuple[tuple[str, str, str, str, str, str, str | None], ...] = (
    ("identitycontrolplane", "IdentityProvider", "/20160918/identityProviders", "saml2idp", "identity", "cud", None),
    ("identitycontrolplane", "IdpGroupMapping", "/20160918/identityProviders/{parent}/groupMappings",
     "idpgroupmapping", "identity", "cud", "saml2idp"),
    ("identitycontrolplane", "Group", "/20160918/groups", "group", "identity", "cud", None),
    ("identitycontrolplane", "Policy", "/20160918/policies", "policy", "identity", "cud", None),
    ("identitycontrolplane", "User", "/20160918/users", "user", "identity", "cud", None),
    ("virtualnetwork", "Vcn", "/20160918/vcns", "vcn", "iaas", "cud", None),
    ("virtualnetwork", "RouteTable", "/20160918/routeTables", "routetable", "iaas", "cudm", None),
    ("virtualnetwork", "SecurityList", "/20160918/securityLists", "securitylist", "iaas", "cudm", None),
    ("virtualnetwork", "NetworkSecurityGroup", "/20160918/networkSecurityGroups", "networksecuritygroup", "iaas",
     "cudm", None),
    ("virtualnetwork", "Drg", "/20160918/drgs", "drg", "iaas", "cud", None),
    ("virtualnetwork", "DrgAttachment", "/20160918/drgAttachments", "drgattachment", "iaas", "cud", None),
    ("virtualnetwork", "InternetGateway", "/20160918/internetGateways", "internetgateway", "iaas", "cudm", None),
    ("virtualnetwork", "LocalPeeringGateway", "/20160918/localPeeringGateways", "localpeeringgateway", "iaas",
     "cuDm", None),
    ("natgateway", "NatGateway", "/20160918/natGateways", "natgateway", "iaas", "cudm", None),
    ("servicegateway", "ServiceGateway", "/20160918/serviceGateways", "servicegateway", "iaas", "cuDm", None),
)


def _cis_operations() -> list[Operation]:
    ops: list[Operation] = []
    for prefix, res, coll, ocid_type, host, verbs, parent in _CIS_RESOURCES:
        def op(name: str, method: str, path: str, kind: str, suffix: str = "", *, p: str = prefix,
               t: str = ocid_type, h: str = host, par: str | None = parent) -> Operation:
            return Operation(f"com.oraclecloud.{p}.{name.lower()}{suffix}", p, name, method, path, t, h, kind, 0.25,
                             par)
        for verb in verbs:
            if verb == "c":
                ops.append(op(f"Create{res}", "POST", coll, "create"))
            elif verb == "u":
                ops.append(op(f"Update{res}", "PUT", coll + "/{id}", "update"))
            elif verb in "dD":
                ops.append(op(f"Delete{res}", "DELETE", coll + "/{id}", "delete", ".end" if verb == "D" else ""))
            elif verb == "m":
                ops.append(op(f"Change{res}Compartment", "POST", coll + "/{id}/actions/changeCompartment", "action"))
    ops += [
        Operation("com.oraclecloud.identitycontrolplane.updateusercapabilities", "identitycontrolplane",
                  "UpdateUserCapabilities", "PUT", "/20160918/users/{id}/capabilities", "user", "identity",
                  "update", 0.25),
        Operation("com.oraclecloud.identitycontrolplane.updateuserstate", "identitycontrolplane", "UpdateUserState",
                  "PUT", "/20160918/users/{id}/state", "user", "identity", "update", 0.25),
        Operation("com.oraclecloud.servicegateway.attachserviceid", "servicegateway", "AttachServiceId", "POST",
                  "/20160918/serviceGateways/{id}/actions/attachService", "servicegateway", "iaas", "action", 0.25),
        Operation("com.oraclecloud.servicegateway.detachserviceid", "servicegateway", "DetachServiceId", "POST",
                  "/20160918/serviceGateways/{id}/actions/detachService", "servicegateway", "iaas", "action", 0.25),
    ]
    for name in ("ProblemDetected", "ProblemDismissed", "ProblemRemediated"):
        ops.append(Operation(f"com.oraclecloud.cloudguard.{name.lower()}", "cloudguard", name, "POST",
                             "/20200131/problems/{id}", "cloudguardproblem", "cloudguard-cp-api", "problem", 0.3))
    return ops


def _api_operations() -> list[Operation]:
    c, o, i, e = "ComputeApi", "ObjectStorage", "identityControlPlane", "EventsService"
    return [
        _api(c, "GetInstance", "GET", "/20160918/instances/{id}", "instance", "iaas", "get", 9),
        _api(c, "ListInstances", "GET", "/20160918/instances", None, "iaas", "list", 8),
        _api(c, "ListVnicAttachments", "GET", "/20160918/vnicAttachments", None, "iaas", "list", 5),
        _api(c, "LaunchInstance", "POST", "/20160918/instances", "instance", "iaas", "create", 0.6),
        _api(c, "TerminateInstance", "DELETE", "/20160918/instances/{id}", "instance", "iaas", "delete", 0.5),
        _api(c, "InstanceAction", "POST", "/20160918/instances/{id}", "instance", "iaas", "action", 1),
        _api("VirtualNetworkApi", "ListVcns", "GET", "/20160918/vcns", None, "iaas", "list", 4),
        _api("VirtualNetworkApi", "GetSubnet", "GET", "/20160918/subnets/{id}", "subnet", "iaas", "get", 3),
        _api(o, "GetObject", "GET", "/n/{ns}/b/{bucket}/o/{id}", "object", "objectstorage", "get", 8),
        _api(o, "PutObject", "PUT", "/n/{ns}/b/{bucket}/o/{id}", "object", "objectstorage", "update", 4),
        _api(o, "DeleteObject", "DELETE", "/n/{ns}/b/{bucket}/o/{id}", "object", "objectstorage", "delete", 1),
        _api(o, "ListBuckets", "GET", "/n/{ns}/b", None, "objectstorage", "list", 3),
        _api(o, "GetBucket", "GET", "/n/{ns}/b/{bucket}", "bucket", "objectstorage", "get", 3),
        _api(i, "ListCompartments", "GET", "/20160918/compartments", None, "identity", "list", 6),
        _api(i, "GetCompartment", "GET", "/20160918/compartments/{id}", "compartment", "identity", "get", 4),
        _api(i, "ListUsers", "GET", "/20160918/users", None, "identity", "list", 3),
        _api(i, "GetUser", "GET", "/20160918/users/{id}", "user", "identity", "get", 3),
        _api(i, "ListPolicies", "GET", "/20160918/policies", None, "identity", "list", 3),
        _api(i, "CreateUser", "POST", "/20160918/users", "user", "identity", "create", 0.3),
        _api(i, "UpdatePolicy", "PUT", "/20160918/policies/{id}", "policy", "identity", "update", 0.4),
        _api(i, "CreateApiKey", "POST", "/20160918/users/{id}/apiKeys", "user", "identity", "create", 0.2),
        _api("IdentitySignOn", "InteractiveLogin", "POST", "/v1/oauth2/authorize", None, "login", "login", 1.5),
        _api(e, "ListRules", "GET", "/20181201/rules", None, "events", "list", 2),
        _api(e, "GetRule", "GET", "/20181201/rules/{id}", "eventrule", "events", "get", 2),
        _api(e, "CreateRule", "POST", "/20181201/rules", "eventrule", "events", "create", 0.2),
        _api(e, "UpdateRule", "PUT", "/20181201/rules/{id}", "eventrule", "events", "update", 0.2),
        _api(e, "DeleteRule", "DELETE", "/20181201/rules/{id}", "eventrule", "events", "delete", 0.1),
        _api("streaming", "ListStreams", "GET", "/20180418/streams", None, "streaming", "list", 2),
        _api("streaming", "GetStream", "GET", "/20180418/streams/{id}", "stream", "streaming", "get", 2),
        _api("functions", "ListApplications", "GET", "/20181201/applications", None, "functions", "list", 1),
        _api("functions", "GetFunction", "GET", "/20181201/functions/{id}", "fnfunc", "functions", "get", 1),
        _api("secretretrieval", "GetSecretBundle", "GET", "/20190301/secretbundles/{id}", "vaultsecret", "secrets",
             "get", 1.5),
        _api("vaultmng", "ListSecrets", "GET", "/20180608/secrets", None, "vaults", "list", 0.5),
    ]


#: Every operation the generator can produce.
OPERATIONS: tuple[Operation, ...] = tuple(_api_operations() + _cis_operations())
#: Every event type, lowercased (restrictions match case-insensitively).
EVENT_TYPES: frozenset[str] = frozenset(op.event_type.lower() for op in OPERATIONS)


@dataclasses.dataclass(frozen=True)
class GenerationSpec:
    """One generation request, validated."""

    region: str
    region_key: str
    tenancy_id: str
    #: ``(id, name)`` of the compartments to spread events over
    compartments: tuple[tuple[str, str], ...]
    count: int
    start_ms: int  # inclusive, epoch milliseconds
    end_ms: int  # exclusive
    seed: int
    event_types: tuple[str, ...] = ()  # lowercase; empty means every type
    sizes: tuple[tuple[str, float], ...] = tuple(DEFAULT_SIZES.items())

    def seed_material(self) -> str:
        """Everything the events depend on: the random stream is seeded from it."""
        return orjson.dumps(dataclasses.asdict(self), option=orjson.OPT_SORT_KEYS).decode()


class GeneratedEvent(NamedTuple):
    """One event, as the consecutive pieces of its JSON text: the large constant pieces (an
    actor's identity and credential headers, resource tags, big payloads) are shared by every event
    that contains them, so a million events cost a fraction of their listed size in memory."""

    compartment_id: str
    event_ms: int
    event_id: str
    parts: tuple[bytes, ...]

    @property
    def blob(self) -> bytes:
        return b"".join(self.parts)


# -- parsing a control request ---------------------------------------------------------------------


def _time_ms(body: dict[str, Any], name: str, default: int) -> int:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, str):
        raise errors.invalid(f"'{name}' must be an RFC 3339 date-time string.")
    try:
        return int(parse_rfc3339(value).timestamp() * 1000)
    except ValueError as exc:
        raise errors.invalid(f"'{name}' is not an RFC 3339 date-time: {value!r}.") from exc


def spec_from_json(body: dict[str, Any], *, region: str, region_key: str, tenancy_id: str,
                   compartments: Sequence[tuple[str, str]], now_ms: int) -> GenerationSpec:
    """Validate the body of ``POST /_ocisim/audit/generate`` (region and compartments are resolved
    by the caller, which knows the world)."""
    count = body.get("count", 1000)
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise errors.invalid("'count' must be a non-negative integer.")
    if count > MAX_COUNT:
        raise errors.limit_exceeded(f"'count' may be at most {MAX_COUNT} per request.")
    end_ms = _time_ms(body, "end", now_ms)
    start_ms = _time_ms(body, "start", end_ms - 3_600_000)
    if start_ms >= end_ms:
        raise errors.invalid("'start' must be before 'end'.")
    seed = body.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise errors.invalid("'seed' must be an integer.")
    types = body.get("eventTypes") or []
    if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
        raise errors.invalid("'eventTypes' must be a list of strings.")
    wanted = tuple(sorted({t.lower() for t in types}))
    unknown = [t for t in wanted if t not in EVENT_TYPES]
    if unknown:
        raise errors.invalid(f"Unknown event types {unknown}; known: {sorted(EVENT_TYPES)}.")
    sizes = body.get("sizes") or DEFAULT_SIZES
    if (not isinstance(sizes, dict) or not sizes
            or not all(k in SIZE_CLASSES and isinstance(v, int | float) and not isinstance(v, bool) and v >= 0
                       for k, v in sizes.items())
            or sum(sizes.values()) <= 0):
        raise errors.invalid(f"'sizes' must map some of {sorted(SIZE_CLASSES)} to non-negative weights.")
    if not compartments:
        raise errors.invalid("There is no compartment to generate events in.")
    return GenerationSpec(region=region, region_key=region_key, tenancy_id=tenancy_id,
                          compartments=tuple(compartments), count=count, start_ms=start_ms, end_ms=end_ms,
                          seed=seed, event_types=wanted,
                          sizes=tuple((k, float(sizes[k])) for k in SIZE_CLASSES if k in sizes))


# -- the actors --------------------------------------------------------------------------------------


_B32 = "abcdefghijklmnopqrstuvwxyz234567"
_SIGNATURE = re.compile(r'signature="[^"]*"')


@dataclasses.dataclass
class Actor:
    """Who makes calls: identity block and credential headers, serialized once per IP address."""

    kind: str  # apikey | console | obo | instance | resource | curl | swift | service | mallory
    name: str | None
    principal_id: str | None
    auth_type: str | None
    user_agent: str
    ips: tuple[str, ...]
    credentials: str | None = None
    authorization: str | None = None
    caller_name: str | None = None
    caller_id: str | None = None
    console_session_id: str | None = None
    extra_headers: dict[str, str] = dataclasses.field(default_factory=dict)
    weight: float = 1.0
    #: per IP: the serialized ``identity`` object, and the constant request headers serialized as
    #: the start of a JSON object (no closing brace: the per-call headers follow)
    identities: list[bytes] = dataclasses.field(default_factory=list)
    headers: list[bytes] = dataclasses.field(default_factory=list)

    def can(self, op: Operation) -> bool:
        if op.kind == "problem":
            return self.kind == "service"
        if self.kind == "service":
            return False
        if op.kind == "login":
            return self.kind == "console"
        if self.kind == "curl":
            return op.kind in _READ_KINDS
        if self.kind == "swift":
            return op.source == "ObjectStorage"
        if self.kind in ("resource", "instance"):
            return op.kind in _READ_KINDS or op.source == "ObjectStorage"
        return self.kind != "mallory"  # mallory only appears in the injected bursts


class _Builder:
    """Random values, resources and actors for one generation."""

    def __init__(self, spec: GenerationSpec, rng: random.Random) -> None:
        self.spec = spec
        self.rng = rng
        self.key = spec.region_key.lower()
        self.namespace = "".join(rng.choice(_B32) for _ in range(12))
        self._pools: dict[str, list[tuple[str, str, bytes]]] = {}
        self._times: dict[int, tuple[str, str]] = {}
        self.actors = self._actors()

    # -- values ------------------------------------------------------------------------------------

    def ocid(self, kind: str, regional: bool = True) -> str:
        unique = "".join(self.rng.choices(_B32, k=52))
        return f"ocid1.{kind}.oc1.{self.key if regional else ''}.aaaaaaaa{unique}"

    def below(self, n: int) -> int:
        """A random index below ``n`` (several times faster than ``randrange``)."""
        return int(self.rng.random() * n)

    def hex(self, bits: int = 128) -> str:
        return f"{self.rng.getrandbits(bits):0{bits // 4}X}"

    def b64(self, nbytes: int) -> str:
        return base64.b64encode(self.rng.randbytes(nbytes)).decode()

    def jwt(self, claims: dict[str, Any]) -> str:
        def part(obj: Any) -> str:
            return base64.urlsafe_b64encode(orjson.dumps(obj)).rstrip(b"=").decode()
        sig = base64.urlsafe_b64encode(self.rng.randbytes(64)).rstrip(b"=").decode()
        return f"{part({'kid': 'asw', 'alg': 'RS256'})}.{part(claims)}.{sig}"

    def times(self, ms: int) -> tuple[str, str]:
        """``(RFC 3339 with milliseconds, RFC 1123 date)`` of an instant, cached per second."""
        second, milli = divmod(ms, 1000)
        cached = self._times.get(second)
        if cached is None:
            when = dt.datetime.fromtimestamp(second, tz=dt.UTC)
            cached = self._times[second] = (when.strftime("%Y-%m-%dT%H:%M:%S"),
                                            email.utils.format_datetime(when, usegmt=True))
        return f"{cached[0]}.{milli:03d}Z", cached[1]

    # -- resources ---------------------------------------------------------------------------------

    def resource(self, kind: str) -> tuple[str, str, bytes]:
        """``(ocid, name, tags)`` from a small pool per kind (real audit logs keep touching the same
        resources); ``tags`` is the JSON text of the ``freeformTags`` and ``definedTags`` members."""
        pool = self._pools.get(kind)
        if pool is None:
            pool = self._pools[kind] = []
            regional = kind not in ("user", "group", "policy", "compartment", "saml2idp", "idpgroupmapping")
            for n in range(24):
                creator = self.rng.choice([a for a in self.actors if a.kind in ("apikey", "console")])
                created = self.times(self.spec.start_ms - self.rng.randrange(1, 90 * 86_400_000))[0]
                env = self.rng.choice(("prod", "dev", "test", "shared"))
                freeform = orjson.dumps({"env": env, "owner": creator.name or "ops"}).decode()
                defined = orjson.dumps({"Oracle-Tags": {"CreatedBy": creator.name, "CreatedOn": created}}).decode()
                pool.append((self.ocid(kind, regional), f"{env}-{kind}-{n:02d}",
                             f'"freeformTags":{freeform},"definedTags":{defined}'.encode()))
        return pool[self.below(len(pool))]

    # -- actors ------------------------------------------------------------------------------------

    def _signature(self, key_id: str) -> str:
        return (f'Signature version="1",headers="date (request-target) host",keyId="{key_id}",'
                f'algorithm="rsa-sha256",signature="{self.b64(256)}"')

    def _user(self, name: str, ua: str, ips: tuple[str, ...], weight: float, kind: str = "apikey") -> Actor:
        user_id = self.ocid("user", regional=False)
        fingerprint = ":".join(f"{b:02x}" for b in self.rng.randbytes(16))
        key_id = f"{self.spec.tenancy_id}/{user_id}/{fingerprint}"
        return Actor(kind=kind, name=name, principal_id=user_id, auth_type="natv", user_agent=ua, ips=ips,
                     credentials=key_id, authorization=self._signature(key_id), weight=weight)

    def _session_token(self, subject: str, res_type: str | None) -> str:
        claims: dict[str, Any] = {"sub": subject, "iss": "authService.oracle.com", "aud": "oci",
                                  "tenant": self.spec.tenancy_id, "ttype": "res" if res_type else "login"}
        if res_type:
            claims.update(res_type=res_type, res_id=subject, res_tenant=self.spec.tenancy_id)
        return "ST$" + self.jwt(claims)

    def _actors(self) -> list[Actor]:
        sdk = "Oracle-PythonSDK/2.189.0 (python 3.11.9; x86_64-Linux)"
        cli = "Oracle-PythonCLI/3.95.1 (python 3.11.9; x86_64-Linux)"
        tf = "Terraform/1.9.5 (+https://www.terraform.io) terraform-provider-oci/6.12.0"
        browser = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
                   "Version/17.4 Safari/605.1.15")
        actors = [
            self._user("alice@example.com", sdk, ("203.0.113.10", "203.0.113.11"), 4),
            self._user("ci-deployer", tf, ("198.51.100.20",), 3),
            self._user("ops-automation", cli, ("198.51.100.21", "198.51.100.22"), 3),
            self._user("prisma-cloud-user", "Vert.x-WebClient/4.2.1", ("18.185.81.104",), 2),
        ]
        console = self._user("oracleidentitycloudservice/carol@example.com", browser, ("192.0.2.33",), 2, "console")
        console.credentials = self._session_token(console.principal_id or "", None)
        console.authorization = self._signature(console.credentials)
        console.console_session_id = self.hex(64)
        actors.append(console)
        obo = self._user("oracleidentitycloudservice/dave@example.com", "Oracle-JavaSDK/3.44.0 (ResourceManager)",
                         ("100.64.7.12",), 1, "obo")
        obo.caller_name, obo.caller_id = "resourcemanager", self.ocid("ormjob")
        obo.extra_headers["opc-obo-token"] = self.jwt({"sub": obo.principal_id, "ptype": "user",
                                                       "obo": "resourcemanager"})
        actors.append(obo)
        for kind, res_type, ua, ip in (("instance", "instance", sdk, "10.0.1.15"),
                                       ("resource", "fnfunc", sdk + " fdk-python/0.1.128", "10.0.2.40")):
            rid = self.ocid(res_type)
            token = self._session_token(rid, res_type)
            actors.append(Actor(kind=kind, name=rid, principal_id=rid, auth_type="res" if kind == "resource"
                                else "inst", user_agent=ua, ips=(ip,), credentials=token,
                                authorization=self._signature(token), weight=2))
        actors.append(Actor(kind="curl", name="eve@example.com", principal_id=self.ocid("user", False),
                            auth_type="natv", user_agent="curl/8.0", ips=("203.0.113.66",),
                            authorization="Bearer " + self.jwt({"sub": "eve@example.com", "scope": "urn:opc:idm"}),
                            weight=0.5))
        swift_user = f"{self.namespace}/backup-bot"
        basic = base64.b64encode(f"{swift_user}:{self.b64(15)}".encode()).decode()
        actors.append(Actor(kind="swift", name="backup-bot", principal_id=self.ocid("user", False),
                            auth_type="natv", user_agent="python-swiftclient-4.4.0", ips=("198.51.100.77",),
                            authorization="Basic " + basic, weight=1))
        actors.append(Actor(kind="service", name="cloudguard", principal_id=None, auth_type=None,
                            user_agent="Oracle-JavaSDK/3.44.0 (CloudGuard)", ips=("100.64.9.1",), weight=1))
        mallory = self._user("mallory", sdk, ("45.155.205.99",), 0, "mallory")
        actors.append(mallory)
        for actor in actors:
            self._serialize(actor)
        return actors

    def _serialize(self, actor: Actor) -> None:
        principal = None
        if actor.principal_id:
            masked = _SIGNATURE.sub('signature="*****"', actor.authorization or "")
            principal = orjson.dumps({
                "tenantId": self.spec.tenancy_id, "subjectId": actor.principal_id,
                "claims": [
                    {"key": "pstype", "value": actor.auth_type or "natv", "issuer": "authService.oracle.com"},
                    {"key": "ptype", "value": "resource" if actor.kind in ("instance", "resource") else "user",
                     "issuer": "authService.oracle.com"},
                    {"key": "authorization", "value": masked, "issuer": "h"},
                ]}).decode()
        for ip in actor.ips:
            actor.identities.append(orjson.dumps({
                "principalName": actor.name, "principalId": actor.principal_id, "authType": actor.auth_type,
                "callerName": actor.caller_name, "callerId": actor.caller_id, "tenantId": self.spec.tenancy_id,
                "ipAddress": ip, "credentials": actor.credentials, "userAgent": actor.user_agent,
                "consoleSessionId": actor.console_session_id}))
            headers: dict[str, Any] = {"Accept": ["application/json"], "User-Agent": [actor.user_agent],
                                       "X-Forwarded-For": [ip], "X-Real-IP": [ip]}
            if actor.authorization:
                headers["Authorization"] = [actor.authorization]
            if principal:
                headers["opc-principal"] = [principal]
            for name, value in actor.extra_headers.items():
                headers[name] = [value]
            actor.headers.append(orjson.dumps(headers)[:-1])


# -- payloads ------------------------------------------------------------------------------------------


def _payloads(builder: _Builder, low: int, high: int, variants: int = 6) -> list[bytes]:
    """Large JSON objects of ``low``..``high`` bytes: policies, instances with user_data, rule sets."""
    rng = builder.rng
    out: list[bytes] = []
    for v in range(variants):
        target = rng.randrange(low, high + 1)
        shape = v % 3
        if shape == 0:
            statements: list[str] = []
            size = 0
            while size < target:
                group = rng.choice(("Administrators", "NetworkAdmins", "Auditors", "SecOps", "Developers"))
                verb = rng.choice(("manage", "use", "read", "inspect"))
                kind = rng.choice(("all-resources", "instance-family", "virtual-network-family", "buckets",
                                   "objects", "stream-family", "functions-family", "secret-family"))
                text = (f"Allow group {group} to {verb} {kind} in compartment id "
                        f"{builder.ocid('compartment', False)} where request.region = '{builder.spec.region}'")
                statements.append(text)
                size += len(text) + 4
            value: dict[str, Any] = {"name": f"policy-{v}", "statements": statements,
                                     "lifecycleState": "ACTIVE", "versionDate": None}
        elif shape == 1:
            value = {"displayName": f"instance-{v}", "shape": "VM.Standard.E4.Flex",
                     "shapeConfig": {"ocpus": 2, "memoryInGBs": 16},
                     "metadata": {"ssh_authorized_keys": "ssh-rsa " + builder.b64(400) + " ops@example",
                                  "user_data": builder.b64(max(target * 3 // 4 - 800, 16))},
                     "lifecycleState": "RUNNING"}
        else:
            rules: list[dict[str, Any]] = []
            size = 0
            while size < target:
                port = rng.randrange(1, 65535)
                rule = {"protocol": "6", "source": f"10.{rng.randrange(256)}.{rng.randrange(256)}.0/24",
                        "isStateless": False, "description": f"allow tcp/{port} from partner network",
                        "tcpOptions": {"destinationPortRange": {"min": port, "max": port}}}
                rules.append(rule)
                size += 190
            value = {"displayName": f"security-list-{v}", "ingressSecurityRules": rules,
                     "egressSecurityRules": [{"protocol": "all", "destination": "0.0.0.0/0"}]}
        out.append(orjson.dumps(value))
    return out


_ERRORS: tuple[tuple[int, str], ...] = (
    (400, "InvalidParameter: the request is not valid."),
    (401, "NotAuthenticated: the required information to complete authentication was not provided."),
    (403, "NotAuthorized: the user is not authorized to perform this operation."),
    (404, "NotAuthorizedOrNotFound: Authorization failed or requested resource not found."),
    (409, "Conflict: the resource is being modified."),
    (429, "TooManyRequests: too many requests for the user."),
    (500, "InternalServerError: internal error."),
)
_SUCCESS = {"get": 200, "list": 200, "create": 200, "update": 200, "delete": 204, "action": 200, "login": 200,
            "problem": 200}
_HOST_DOMAIN = {"iaas": "oraclecloud.com", "objectstorage": "oraclecloud.com"}


class _Plan(NamedTuple):
    time_ms: int
    op: int
    actor: int
    ip: int
    flags: int  # bit 0: instance-metadata URL; bit 1: forced 403


def _scenarios(builder: _Builder, ops: Sequence[Operation], count: int) -> list[_Plan]:
    """The detections' patterns, placed at random inside the window (only when every type is wanted)."""
    spec, rng = builder.spec, builder.rng
    if spec.event_types or count < 100:
        return []
    index = {op.event_type: n for n, op in enumerate(ops)}
    actors = builder.actors
    mallory = next(n for n, a in enumerate(actors) if a.kind == "mallory")
    instance = next(n for n, a in enumerate(actors) if a.kind == "instance")
    alice = next(n for n, a in enumerate(actors) if a.name == "alice@example.com")
    span = spec.end_ms - spec.start_ms
    burst = min(span, 540_000)  # inside ten minutes

    def at() -> int:
        return spec.start_ms + rng.randrange(span - burst + 1)

    plans: list[_Plan] = []
    for name in ("LaunchInstance", "TerminateInstance"):
        base = at()
        op = index[f"com.oraclecloud.ComputeApi.{name}"]
        plans += [_Plan(base + rng.randrange(burst + 1), op, mallory, 0, 0) for _ in range(6)]
    plans.append(_Plan(at(), index["com.oraclecloud.EventsService.DeleteRule"], mallory, 0, 0))
    plans.append(_Plan(at(), index["com.oraclecloud.ComputeApi.GetInstance"], instance, 0, 1))
    plans.append(_Plan(at(), index["com.oraclecloud.identityControlPlane.ListPolicies"], alice, 0, 2))
    return [p._replace(time_ms=min(p.time_ms, spec.end_ms - 1)) for p in plans[:count]]


def generate(spec: GenerationSpec) -> list[GeneratedEvent]:
    """The events of ``spec``, sorted by event time."""
    rng = random.Random(spec.seed_material())
    builder = _Builder(spec, rng)
    ops = [op for op in OPERATIONS if not spec.event_types or op.event_type.lower() in spec.event_types]
    actors = builder.actors
    eligible: list[tuple[list[int], list[float]]] = []
    for op in ops:
        ids = [n for n, a in enumerate(actors) if a.weight > 0 and a.can(op)]
        cum: list[float] = []
        total = 0.0
        for n in ids:
            total += actors[n].weight
            cum.append(total)
        eligible.append((ids, cum))

    plans = _scenarios(builder, ops, spec.count)
    op_picks = rng.choices(range(len(ops)), weights=[op.weight for op in ops], k=spec.count - len(plans))
    span, start, random_ = spec.end_ms - spec.start_ms, spec.start_ms, rng.random
    for op_n in op_picks:
        ids, cum = eligible[op_n]
        actor_n = ids[bisect.bisect_left(cum, random_() * cum[-1])]
        plans.append(_Plan(start + int(random_() * span), op_n, actor_n,
                           int(random_() * len(actors[actor_n].ips)), 0))
    plans.sort()

    size_names = [name for name, _ in spec.sizes]
    size_weights = [weight for _, weight in spec.sizes]
    payloads = {name: _payloads(builder, *SIZE_CLASSES[name]) for name in size_names if name != "base"}
    sizes = rng.choices(size_names, weights=size_weights, k=len(plans))
    render = _Renderer(builder, ops)
    return [render(plan, payloads.get(size)) for plan, size in zip(plans, sizes, strict=True)]


def _js(value: str | None) -> str:
    """A JSON string (or null) for a value known to need no escaping."""
    return "null" if value is None else f'"{value}"'


class _OpText(NamedTuple):
    """The constant text of an operation's events."""

    op: Operation
    head: str  # the envelope up to the eventId value
    name: str  # '"eventName":"…"'
    read: bool
    url: str  # the oci-original-url up to the path
    status: str
    message: str
    body_headers: bool  # POST/PUT carry Content-Type and an opc-retry-token


#: Stands, in an event's text, for the next shared piece (JSON text never holds a raw NUL).
_SHARED = "\x00"


class _Renderer:
    """Turns one plan into the pieces of one Audit API v2 event.

    Events are written as JSON text directly: the constant parts (an actor's identity and headers,
    resource tags, the large payloads) are serialized once by orjson and shared; the per-event values
    spliced in (dates, ids, OCIDs, generated names and paths) are ASCII without quotes or backslashes,
    so they need no escaping; compartment names come from the world and are escaped once. The text
    marks each shared piece with a NUL and is split there. Tests parse generated events and check
    them against the SDK's models.
    """

    def __init__(self, builder: _Builder, ops: Sequence[Operation]) -> None:
        self.b = builder
        self.rng = builder.rng
        self.actors = builder.actors
        region = builder.spec.region
        self.compartments = [(cid, orjson.dumps(cid).decode(), orjson.dumps(name).decode())
                             for cid, name in builder.spec.compartments]
        self.ns = builder.namespace
        self.buckets = [f"{env}-bucket-{n}" for env in ("prod", "logs", "backup") for n in range(3)]
        self.ads = [f"Uocm:{builder.spec.region_key}-AD-{n}" for n in (1, 2, 3)]
        self.no_tags = b'"freeformTags":{},"definedTags":{}'
        self.ops = [_OpText(
            op,
            f'{{"eventType":"{op.event_type}","cloudEventsVersion":"0.1","eventTypeVersion":"2.0",'
            f'"source":"{op.source}","eventId":"',
            f'"eventName":"{op.name}"', op.kind in _READ_KINDS,
            f"https://{op.host}.{region}.{_HOST_DOMAIN.get(op.host, 'oci.oraclecloud.com')}",
            str(_SUCCESS[op.kind]), f"{op.name} succeeded", op.method in ("POST", "PUT")) for op in ops]

    def __call__(self, plan: _Plan, bulk: list[bytes] | None) -> GeneratedEvent:
        b, random = self.b, self.rng.random
        text = self.ops[plan.op]
        op = text.op
        actor = self.actors[plan.actor]
        comp_id, comp_id_json, comp_name_json = self.compartments[int(random() * len(self.compartments))]
        event_time, http_date = b.times(plan.time_ms)
        response_time = b.times(plan.time_ms + 4 + int(random() * 900))[0]
        h = f"{self.rng.getrandbits(384):096x}"
        event_id = f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"
        opc_request_id = h[32:64].upper()
        request_id = f"{opc_request_id}/{h[64:].upper()}"

        resource_id = resource_name = None
        resource_name_json = "null"
        tags = self.no_tags
        kind = op.resource
        if kind == "compartment":
            resource_id, resource_name_json = comp_id, comp_name_json
        elif kind == "object":
            resource_id = resource_name = f"logs/{event_time[:10]}/part-{int(random() * 10_000):05d}.json.gz"
        elif kind:
            resource_id, resource_name, tags = b.resource(kind)
        if resource_name is not None:
            resource_name_json = f'"{resource_name}"'
        bucket = self.buckets[int(random() * 9)]
        path = op.path
        if "{" in path:
            path = path.format(id=resource_id or "", ns=self.ns, bucket=bucket,
                               parent=b.resource(op.parent)[0] if op.parent else "")
        url = text.url + path
        parameters = "{}"
        if op.kind == "list":
            parameters = f'{{"compartmentId":[{comp_id_json}],"limit":["100"]}}'
        elif op.name == "InstanceAction":
            parameters = f'{{"action":["{("STOP", "START", "SOFTRESET")[int(random() * 3)]}"]}}'

        status, message = text.status, text.message
        if plan.flags:
            if plan.flags & 1:
                path = "/opc/v1/instance/"
                url = "http://169.254.169.254" + path
            if plan.flags & 2:
                status, message = "403", _ERRORS[2][1]
        elif random() < 0.03:
            code, message = _ERRORS[int(random() * len(_ERRORS))]
            status = str(code)

        shared: list[bytes] = [tags, actor.identities[plan.ip]]
        if op.kind == "problem":
            # Cloud Guard's own events carry no HTTP exchange: blank request and response fields, like
            # the events of services still on the version 1 schema (about 1 KB), details aside
            details = "{}"
            if bulk is not None:
                shared.append(bulk[int(random() * len(bulk))])
                details = f'{{"problem":{_SHARED}}}'
            event = (
                f'{text.head}{event_id}","eventTime":"{event_time}","contentType":"application/json","data":{{'
                f'"eventGroupingId":"{request_id}",{text.name},"compartmentId":{comp_id_json},'
                f'"compartmentName":{comp_name_json},"resourceName":{resource_name_json},'
                f'"resourceId":{_js(resource_id)},"availabilityDomain":null,{_SHARED},"identity":{_SHARED},'
                f'"request":{{"id":"{request_id}","path":null,"action":null,"parameters":{{}},"headers":{{}}}},'
                f'"response":{{"status":"{status}","responseTime":null,"headers":{{}},"payload":null,'
                f'"message":"{message}"}},"stateChange":{{"previous":null,"current":null}},'
                f'"additionalDetails":{details}}}}}'
            )
            return GeneratedEvent(comp_id, plan.time_ms, event_id, _pieces(event, shared))

        extra = ""
        if text.body_headers:
            extra = f',"Content-Type":["application/json"],"opc-retry-token":["{self.rng.getrandbits(128):032x}"]'
        shared.append(actor.headers[plan.ip])
        payload = "null"
        state = '{"previous":null,"current":null}'
        if bulk is not None:
            shared.append(bulk[int(random() * len(bulk))])
            if text.read or op.kind == "login":
                payload = f'{{"resourceName":{resource_name_json},"id":{_js(resource_id)},"items":{_SHARED}}}'
            elif op.kind == "delete":
                state = f'{{"previous":{_SHARED},"current":null}}'
            else:
                state = f'{{"previous":null,"current":{_SHARED}}}'
        details = "{}"
        ad = "null"
        if kind == "instance":
            ad = f'"{self.ads[int(random() * 3)]}"'
            details = f'{{"imageId":"{b.resource("image")[0]}","shape":"VM.Standard.E4.Flex","type":"CustomerVmi"}}'
        elif op.source == "ObjectStorage":
            details = f'{{"namespace":"{self.ns}","bucketName":"{bucket}"}}'

        event = (
            f'{text.head}{event_id}","eventTime":"{event_time}","contentType":"application/json","data":{{'
            f'"eventGroupingId":{"null" if text.read else _js(request_id)},{text.name},'
            f'"compartmentId":{comp_id_json},"compartmentName":{comp_name_json},'
            f'"resourceName":{resource_name_json},"resourceId":{_js(resource_id)},"availabilityDomain":{ad},'
            f'{_SHARED},"identity":{_SHARED},'
            f'"request":{{"id":"{request_id}","path":"{path}","action":"{op.method}","parameters":{parameters},'
            f'"headers":{_SHARED},"Date":["{http_date}"],"opc-request-id":["{opc_request_id}"],'
            f'"oci-original-url":["{url}"]{extra}}}}},'
            f'"response":{{"status":"{status}","responseTime":"{response_time}",'
            f'"headers":{{"Content-Type":["application/json"],"Date":["{http_date}"],'
            f'"opc-request-id":["{request_id}"]}},"payload":{payload},"message":"{message}"}},'
            f'"stateChange":{state},"additionalDetails":{details}}}}}'
        )
        return GeneratedEvent(comp_id, plan.time_ms, event_id, _pieces(event, shared))


def _pieces(text: str, shared: list[bytes]) -> tuple[bytes, ...]:
    """The text's own pieces, encoded, interleaved with the shared pieces its NULs stand for."""
    own = text.split(_SHARED)
    assert len(own) == len(shared) + 1
    out: list[bytes] = [b""] * (2 * len(own) - 1)
    out[0::2] = [piece.encode() for piece in own]
    out[1::2] = shared
    return tuple(out)
