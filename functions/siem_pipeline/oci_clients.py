"""The one OCI client factory of the project: the operator and the Fn functions build every client here.

Why one factory rather than ``oci.X(config)`` wherever a client is needed:

* **Auth** is a small typed choice (:data:`OciAuth`): a config file, an API key given as values (the
  operator reads them from a Kubernetes Secret, so one operator process serves many tenancies: a
  factory holds no global state and two factories for two tenancies coexist), an instance principal,
  a resource principal (what the functions use) or OKE workload identity. Principal signers contact
  metadata services, so they are created on first use and then reused by every client of the factory.
* **Endpoints**: ``SIEM_OCI_ENDPOINT_TEMPLATE`` (e.g. ``http://127.0.0.1:8642/{region}/{service}``) points
  every control-plane client at an emulator; ``{service}`` is the first label of the real host name
  (:data:`SERVICE_NAMES`). Unset means the SDK's real endpoints. Data-plane clients take the URL the
  resource returned (``stream.messages_endpoint``, ``topic.api_endpoint``, ``function.invoke_endpoint``).
* **Retries**: the SDK retries nothing unless told, and its generated fallback (``DEFAULT_RETRY_STRATEGY``)
  is missing on exactly the calls this pipeline lives on (table below). Every client gets an explicit
  client-level ``retry_strategy`` built from :class:`RetryPolicy`.
* **Circuit breakers**: the SDK gives every client without a strategy the *same* process-wide breaker
  (one name, registered in ``circuitbreaker.CircuitBreakerMonitor``), so ten throttled Audit calls would
  open the breaker of the Streaming clients too. Here each client gets its own uniquely named
  ``CircuitBreakerStrategy``; clients are cached per (kind, region or endpoint) so a breaker lives as long
  as the client whose health it tracks, and :meth:`OciClientFactory.close` unregisters them.
* **Timeouts** are explicit, and ``additional_user_agent`` names the project and its version.
* **Imports on first use**: a :class:`ClientKind` names its SDK class by path (``"identity.IdentityClient"``)
  and the service package is imported when the first client of that kind is built. Every function pays
  its cold start again and each service package imports all its models at once (``oci.core`` alone
  ~0.2 s), while a function uses three or four of the fourteen kinds. ``import oci`` itself loads no
  service (the SDK resolves ``oci.<service>`` lazily unless ``OCI_PYTHON_SDK_LAZY_IMPORTS_DISABLED`` is
  set), so the other modules may ``import oci`` and use ``oci.streaming.models`` at call time.

Retries per client (R: the SDK would fall back to its default retry, noR: it would not retry at all).
Every client here retries the same way; the third column says which calls are not idempotent and why
retrying them is still right for this project:

=====================  ==========  ===================================================================
client                 SDK         non-idempotent calls under retry
=====================  ==========  ===================================================================
identity, secrets,     R           none used (reads)
autoscaling, schedules
vaults                 partly R    none used (reads)
stream_admin,          R           ``create_stream``, ``create_application``, ``create_function`` carry
functions_management               no ``opc-retry-token``: a retry after a lost response may create a
                                   duplicate, so callers look children up (by the pipeline-uid tag)
                                   before creating and converge on one, as level-based reconciling
                                   does anyway. ``create_stream_pool`` and ``create_schedule`` carry
                                   a token the SDK adds whenever a retry strategy is set.
audit                  noR         none (reads); backoff capped at 60 s, not 30 (Audit throttles per
                                   tenancy)
notification_control,  noR         creates carry retry tokens (added by the SDK, as above)
events, compute_mgmt
stream (data plane)    noR         ``put_messages``: a retry after a lost response appends the batch
                                   twice; the pipeline is at-least-once and the export side
                                   deduplicates on ``eventId``. Per-entry failures come back in a 200
                                   and are the caller's to retry.
notification_data      noR         ``publish_message``: a duplicate "fetch"/"export" nudge only makes
                                   a function look at offsets it has already handled.
functions_invoke       noR         ``invoke_function``: the function may run twice; handlers are
                                   idempotent by design (watermarks, commit after the SIEM accepted).
                                   Pass the body as ``bytes``: the SDK never retries a stream body it
                                   cannot rewind.
=====================  ==========  ===================================================================

A single call can opt out with the SDK's per-operation argument: ``client.op(..., retry_strategy=NO_RETRY)``.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.metadata
import logging
import os
import re
import threading
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal
from urllib.parse import urlsplit

import oci
from pydantic import BaseModel, ConfigDict, Field, SecretStr, TypeAdapter, field_validator

if TYPE_CHECKING:  # the service packages themselves are imported when a client of theirs is first built
    from oci.audit import AuditClient
    from oci.autoscaling import AutoScalingClient
    from oci.core import ComputeManagementClient
    from oci.events import EventsClient
    from oci.functions import FunctionsInvokeClient, FunctionsManagementClient
    from oci.identity import IdentityClient
    from oci.ons import NotificationControlPlaneClient, NotificationDataPlaneClient
    from oci.resource_scheduler import ScheduleClient
    from oci.secrets import SecretsClient
    from oci.streaming import StreamAdminClient, StreamClient
    from oci.vault import VaultsClient

log = logging.getLogger(__name__)

ENDPOINT_TEMPLATE_VAR: Final = "SIEM_OCI_ENDPOINT_TEMPLATE"
RESOURCE_PRINCIPAL_VERSION_VAR: Final = "OCI_RESOURCE_PRINCIPAL_VERSION"

#: Per-call opt-out of the client's retry strategy: ``client.op(..., retry_strategy=NO_RETRY)``.
NO_RETRY: Final = oci.retry.NoneRetryStrategy()

#: First label of each real service host; also what ocisim serves under ``/<region>/<service>/``.
SERVICE_NAMES: Final = frozenset({"identity", "audit", "streaming", "notification", "events", "functions",
                                  "resource-scheduler", "autoscaling", "iaas", "vaults", "secrets"})

_REGION = re.compile(r"^[a-z][a-z0-9-]*[a-z0-9]$")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


def _project_user_agent() -> str:
    try:
        version = importlib.metadata.version("oci-siem-operator")
    except importlib.metadata.PackageNotFoundError:
        version = "0+unknown"
    return f"oci-siem-operator/{version}"


DEFAULT_USER_AGENT: Final = _project_user_agent()


# -- endpoints -----------------------------------------------------------------------------------------


def validate_endpoint_template(template: str) -> str:
    """Check an endpoint template; returns it or raises ``ValueError`` saying what is wrong."""
    problem = None
    placeholders = set(_PLACEHOLDER.findall(template))
    if "region" not in placeholders or "service" not in placeholders:
        # {service} too: without it Identity and Core (both /20160918), or ONS, Events and Functions
        # (all /20181201), would share one URL and reach each other's handlers.
        problem = "it must contain both {region} and {service}"
    elif placeholders - {"region", "service"}:
        problem = f"unknown placeholder(s) {sorted(placeholders - {'region', 'service'})}"
    else:
        parts = urlsplit(template.replace("{region}", "r").replace("{service}", "s"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            problem = "it must be an absolute http:// or https:// URL"
        elif parts.username or parts.password or parts.query or parts.fragment:
            problem = "it must not carry user info, a query or a fragment"
    if problem:
        raise ValueError(f"invalid OCI endpoint template {template!r} ({ENDPOINT_TEMPLATE_VAR}): {problem}; "
                         "expected e.g. 'http://127.0.0.1:8642/{region}/{service}'")
    return template


def _check_region(region: str) -> str:
    if not _REGION.match(region):
        raise ValueError(f"invalid OCI region {region!r}: expected a region name such as 'us-ashburn-1'")
    return region


def _check_data_plane_url(url: str, what: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ValueError(f"invalid {what} {url!r}: expected the http(s) URL the resource returned")
    return url.rstrip("/")


# -- auth ----------------------------------------------------------------------------------------------


class _Auth(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    #: default region of the clients built without one (else the config file's or the signer's)
    region: str | None = None

    @field_validator("region")
    @classmethod
    def _region(cls, value: str | None) -> str | None:
        return None if value is None else _check_region(value)


class ConfigFileAuth(_Auth):
    """An OCI SDK/CLI config file; a ``security_token_file`` entry (``oci session authenticate``) is honoured."""

    type: Literal["config_file"] = "config_file"
    #: None: ``OCI_CONFIG_FILE``, else ``~/.oci/config`` (the SDK's own fallback)
    path: str | None = None
    profile: str = "DEFAULT"


class ApiKeyAuth(_Auth):
    """An API key given as values (the operator reads them from a Kubernetes Secret). Secrets stay masked."""

    type: Literal["api_key"] = "api_key"
    user: str
    tenancy: str
    fingerprint: str
    private_key: SecretStr
    passphrase: SecretStr | None = None
    region: str  # required here: nothing else could supply it

    @field_validator("user", "tenancy")
    @classmethod
    def _ocid(cls, value: str) -> str:
        if not oci.config.PATTERNS["tenancy"].match(value):
            raise ValueError("must be an OCID such as 'ocid1.user.oc1..aaaa…'")
        return value

    @field_validator("fingerprint", mode="before")
    @classmethod
    def _fingerprint(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip().lower()
            if not oci.config.PATTERNS["fingerprint"].match(value):
                raise ValueError("must be 16 colon-separated hex pairs (the key's MD5 fingerprint)")
        return value

    @field_validator("private_key")
    @classmethod
    def _pem(cls, value: SecretStr) -> SecretStr:
        text = value.get_secret_value()
        if "-----BEGIN" not in text or "PRIVATE KEY-----" not in text:
            raise ValueError("must be the PEM text of a private key")  # never echo the value
        return value

    @field_validator("passphrase")
    @classmethod
    def _empty_passphrase(cls, value: SecretStr | None) -> SecretStr | None:
        return value if value is not None and value.get_secret_value() else None


class InstancePrincipalAuth(_Auth):
    type: Literal["instance_principal"] = "instance_principal"


class ResourcePrincipalAuth(_Auth):
    """What Fn functions use: the ``OCI_RESOURCE_PRINCIPAL_*`` variables the platform injects."""

    type: Literal["resource_principal"] = "resource_principal"


class WorkloadIdentityAuth(_Auth):
    """OKE workload identity: the pod's service-account token exchanged through the cluster's proxymux."""

    type: Literal["workload_identity"] = "workload_identity"
    service_account_token_path: str | None = None


OciAuth = Annotated[ConfigFileAuth | ApiKeyAuth | InstancePrincipalAuth | ResourcePrincipalAuth
                    | WorkloadIdentityAuth, Field(discriminator="type")]
_AUTH_ADAPTER: TypeAdapter[OciAuth] = TypeAdapter(OciAuth)


def parse_oci_auth(data: Mapping[str, Any]) -> OciAuth:
    """An :data:`OciAuth` from plain data (``{"type": "api_key", ...}``); raises ``ValueError`` when invalid."""
    return _AUTH_ADAPTER.validate_python(dict(data))


def oci_auth_from_env(environ: Mapping[str, str] | None = None) -> OciAuth:
    """The functions' auth: a resource principal when the platform injected one, else a config file.

    ``SIEM_OCI_AUTH`` (``instance_principal``, ``workload_identity``, ``resource_principal``,
    ``config_file``) forces a choice; ``OCI_CONFIG_FILE`` and ``SIEM_OCI_CONFIG_PROFILE`` pick the file.
    """
    env = os.environ if environ is None else environ
    kind = env.get("SIEM_OCI_AUTH") or ("resource_principal" if env.get(RESOURCE_PRINCIPAL_VERSION_VAR)
                                       else "config_file")
    if kind == "config_file":
        return ConfigFileAuth(path=env.get("OCI_CONFIG_FILE") or None,
                              profile=env.get("SIEM_OCI_CONFIG_PROFILE") or "DEFAULT")
    if kind == "api_key":
        raise ValueError("SIEM_OCI_AUTH=api_key: API keys are given as values (ApiKeyAuth), not via the environment")
    return parse_oci_auth({"type": kind})


# -- policies ------------------------------------------------------------------------------------------


class RetryPolicy(BaseModel):
    """Exponential backoff with decorrelated jitter: ``min(base * 2^(n-1) + U(0, jitter), max_wait)``.

    Retries 429, every 5xx but 501, 409 ``IncorrectState``/``LockConflict``, timeouts, connection
    errors and an open circuit breaker; the SDK ignores ``Retry-After``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_attempts: int = Field(8, ge=1)
    total_elapsed_seconds: float = Field(600.0, gt=0)
    base_sleep_seconds: float = Field(1.0, ge=0)
    max_wait_seconds: float = Field(30.0, ge=0)
    jitter_seconds: float = Field(1.0, ge=0)

    @classmethod
    def fast(cls) -> RetryPolicy:
        """For tests: same retry decisions, no sleeping."""
        return cls(max_attempts=4, total_elapsed_seconds=10.0, base_sleep_seconds=0.0, max_wait_seconds=0.0,
                   jitter_seconds=0.0)

    def build(self) -> Any:
        """A fresh SDK strategy (its status table is copied: the SDK builder shares a module-level dict)."""
        retryable = {status: list(codes) for status, codes in
                     oci.retry.retry_checkers.RETRYABLE_STATUSES_AND_CODES.items()}
        return oci.retry.RetryStrategyBuilder(
            max_attempts_check=True, max_attempts=self.max_attempts,
            total_elapsed_time_check=True, total_elapsed_time_seconds=self.total_elapsed_seconds,
            service_error_check=True, service_error_retry_config=retryable, service_error_retry_on_any_5xx=True,
            retry_base_sleep_time_seconds=self.base_sleep_seconds, retry_exponential_growth_factor=2,
            retry_max_wait_between_calls_seconds=self.max_wait_seconds, decorrelated_jitter=self.jitter_seconds,
            backoff_type=oci.retry.BACKOFF_DECORRELATED_JITTER_VALUE,
        ).get_retry_strategy()


class CircuitBreakerPolicy(BaseModel):
    """Per-client breaker: opens after ``failure_threshold`` consecutive transient errors (429, 5xx, 409s)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    failure_threshold: int = Field(10, ge=1)
    recovery_timeout_seconds: int = Field(30, ge=1)

    def build(self, name: str) -> Any:
        if not self.enabled:
            return oci.circuit_breaker.NoCircuitBreakerStrategy()
        statuses = {status: list(codes) for status, codes in
                    oci.circuit_breaker.DEFAULT_CIRCUIT_BREAKER_FAILURE_STATUSES_AND_CODES.items()}
        return oci.circuit_breaker.CircuitBreakerStrategy(
            name=name, failure_threshold=self.failure_threshold, recovery_timeout=self.recovery_timeout_seconds,
            failure_statuses_and_codes=statuses)


class ClientSettings(BaseModel):
    """How clients are built. :meth:`from_env` reads it the way the functions get it (Fn config = env)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: None: the SDK's real endpoints
    endpoint_template: str | None = None
    connect_timeout_seconds: float = Field(10.0, gt=0)
    read_timeout_seconds: float = Field(60.0, gt=0)
    #: a synchronous invoke lasts up to the function's timeout (300 s at most)
    invoke_read_timeout_seconds: float = Field(330.0, gt=0)
    retry: RetryPolicy = RetryPolicy()
    #: Audit's cap on one backoff wait (its throttling is per tenancy: back off harder, up to 60 s)
    audit_max_wait_seconds: float = Field(60.0, ge=0)
    circuit_breaker: CircuitBreakerPolicy = CircuitBreakerPolicy()
    user_agent: str = DEFAULT_USER_AGENT

    @field_validator("endpoint_template")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        return validate_endpoint_template(value) if value else None

    @classmethod
    def fast(cls, **overrides: Any) -> ClientSettings:
        """The test profile: retries without sleeping."""
        return cls(**{"retry": RetryPolicy.fast(), **overrides})

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ClientSettings:
        """``SIEM_OCI_ENDPOINT_TEMPLATE``, ``SIEM_OCI_RETRY_MAX_ATTEMPTS``, ``SIEM_OCI_RETRY_MAX_SECONDS``,
        ``SIEM_OCI_CONNECT_TIMEOUT``, ``SIEM_OCI_READ_TIMEOUT``, ``SIEM_OCI_CIRCUIT_BREAKER`` (true/false)."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {"endpoint_template": env.get(ENDPOINT_TEMPLATE_VAR) or None}
        retry: dict[str, Any] = {}
        for var, target, key in (("SIEM_OCI_RETRY_MAX_ATTEMPTS", retry, "max_attempts"),
                                 ("SIEM_OCI_RETRY_MAX_SECONDS", retry, "total_elapsed_seconds"),
                                 ("SIEM_OCI_CONNECT_TIMEOUT", values, "connect_timeout_seconds"),
                                 ("SIEM_OCI_READ_TIMEOUT", values, "read_timeout_seconds")):
            if env.get(var):
                try:
                    target[key] = float(env[var]) if key != "max_attempts" else int(env[var])
                except ValueError:
                    raise ValueError(f"{var}={env[var]!r} is not a valid number") from None
        if retry:
            values["retry"] = RetryPolicy(**retry)
        breaker = env.get("SIEM_OCI_CIRCUIT_BREAKER", "").strip().lower()
        if breaker:
            if breaker not in ("true", "false"):
                raise ValueError(f"SIEM_OCI_CIRCUIT_BREAKER={breaker!r}: expected true or false")
            values["circuit_breaker"] = CircuitBreakerPolicy(enabled=breaker == "true")
        return cls(**values)

    def retry_for(self, kind: str) -> RetryPolicy:
        if kind == "audit":
            cap = max(self.retry.max_wait_seconds, self.audit_max_wait_seconds)
            return self.retry.model_copy(update={"max_wait_seconds": cap})
        return self.retry


# -- the factory ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ClientKind:
    name: str
    #: first label of the real host name (the ``{service}`` of the endpoint template)
    service: str
    #: the SDK client class as ``"<oci sub-package>.<class>"``, imported on first use (:meth:`client_class`)
    client_path: str
    #: data-plane clients talk to the URL the resource returned ("required"); ONS publishing may also use
    #: the regional endpoint ("optional"); control-plane clients only know regions ("none")
    endpoint: Literal["none", "optional", "required"] = "none"

    def client_class(self) -> type[Any]:
        """The SDK client class, its service package imported now if it was not yet (then cached)."""
        return _sdk_class(self.client_path)


@functools.cache
def _sdk_class(path: str) -> type[Any]:
    # Each service package imports its models at once (oci.core alone takes ~0.2 s): a function process
    # imports only the services it builds clients of, when it first builds one, not all fourteen at start.
    module, _, name = path.rpartition(".")
    cls: type[Any] = getattr(importlib.import_module(f"oci.{module}"), name)
    return cls


KINDS: Final[dict[str, ClientKind]] = {kind.name: kind for kind in (
    ClientKind("identity", "identity", "identity.IdentityClient"),
    ClientKind("audit", "audit", "audit.AuditClient"),
    ClientKind("stream_admin", "streaming", "streaming.StreamAdminClient"),
    ClientKind("stream", "streaming", "streaming.StreamClient", endpoint="required"),
    ClientKind("notification_control", "notification", "ons.NotificationControlPlaneClient"),
    ClientKind("notification_data", "notification", "ons.NotificationDataPlaneClient", endpoint="optional"),
    ClientKind("events", "events", "events.EventsClient"),
    ClientKind("functions_management", "functions", "functions.FunctionsManagementClient"),
    ClientKind("functions_invoke", "functions", "functions.FunctionsInvokeClient", endpoint="required"),
    ClientKind("schedules", "resource-scheduler", "resource_scheduler.ScheduleClient"),
    ClientKind("autoscaling", "autoscaling", "autoscaling.AutoScalingClient"),
    ClientKind("compute_management", "iaas", "core.ComputeManagementClient"),
    ClientKind("vaults", "vaults", "vault.VaultsClient"),
    ClientKind("secrets", "secrets", "secrets.SecretsClient"),
)}


class OciClientFactory:
    """Builds, caches and closes the OCI clients of one identity (one tenancy's credentials).

    Nothing touches a file or the network until the first client is asked for. Clients are cached per
    (kind, region or endpoint), so each keeps its breaker state; the factory is thread-safe. Call
    :meth:`close` (or use it as a context manager) when the credentials go away.
    """

    def __init__(self, auth: OciAuth, settings: ClientSettings | None = None, *, name: str = "siem") -> None:
        self.auth = auth
        #: None: read from the environment now; pass settings to ignore ``SIEM_OCI_ENDPOINT_TEMPLATE``
        self.settings = ClientSettings.from_env() if settings is None else settings
        self.name = name
        self._lock = threading.RLock()
        self._signer: Any = None
        self._file_config: dict[str, Any] | None = None
        self._clients: dict[tuple[str, str], Any] = {}
        self._closed = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, name: str = "siem") -> OciClientFactory:
        """Auth and settings from the environment (a function's): see :func:`oci_auth_from_env`."""
        return cls(oci_auth_from_env(environ), ClientSettings.from_env(environ), name=name)

    def __repr__(self) -> str:
        return (f"OciClientFactory(name={self.name!r}, auth={self.auth!r}, "
                f"endpoint_template={self.settings.endpoint_template!r}, clients={len(self._clients)})")

    def __enter__(self) -> OciClientFactory:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- identity --------------------------------------------------------------------------------------

    def _config_file(self) -> dict[str, Any]:
        assert isinstance(self.auth, ConfigFileAuth)
        with self._lock:
            if self._file_config is None:
                self._file_config = dict(oci.config.from_file(self.auth.path or oci.config.DEFAULT_LOCATION,
                                                              self.auth.profile))
            return self._file_config

    def _key_config(self) -> dict[str, Any]:
        """The SDK config dict of the API-key modes (it may carry the key: only the signer gets it)."""
        auth = self.auth
        if isinstance(auth, ApiKeyAuth):
            return {"user": auth.user, "tenancy": auth.tenancy, "fingerprint": auth.fingerprint,
                    "key_content": auth.private_key.get_secret_value(),
                    "pass_phrase": auth.passphrase.get_secret_value() if auth.passphrase else None,
                    "region": auth.region}
        return self._config_file()

    def signer(self) -> Any:
        """The request signer, built once per factory (principal signers contact metadata services)."""
        with self._lock:
            if self._signer is None:
                self._signer = self._build_signer()
            return self._signer

    def _build_signer(self) -> Any:
        auth = self.auth
        signers = oci.auth.signers  # looked up now, so the class in effect at first use is the one used
        if isinstance(auth, InstancePrincipalAuth):
            return signers.InstancePrincipalsSecurityTokenSigner()
        if isinstance(auth, ResourcePrincipalAuth):
            return signers.get_resource_principals_signer()
        if isinstance(auth, WorkloadIdentityAuth):
            if auth.service_account_token_path:
                return signers.get_oke_workload_identity_resource_principal_signer(
                    service_account_token_path=auth.service_account_token_path)
            return signers.get_oke_workload_identity_resource_principal_signer()
        config = self._key_config()
        token_file = config.get("security_token_file")
        if token_file:  # a session from `oci session authenticate`
            token = Path(token_file).expanduser().read_text().strip()
            key = oci.signer.load_private_key_from_file(config["key_file"], config.get("pass_phrase"))
            return signers.SecurityTokenSigner(token, key)
        oci.config.validate_config(config)  # InvalidConfig names the missing or malformed fields, not values
        return oci.signer.Signer(config["tenancy"], config["user"], config["fingerprint"], config.get("key_file"),
                                 pass_phrase=config.get("pass_phrase"), private_key_content=config.get("key_content"))

    @property
    def region(self) -> str:
        """The default region: the auth's, else the config file's, else the signer's."""
        if self.auth.region:
            return self.auth.region
        region: str | None = None
        if isinstance(self.auth, ConfigFileAuth):
            region = self._config_file().get("region")
        elif not isinstance(self.auth, ApiKeyAuth):
            region = getattr(self.signer(), "region", None)
        if not region:
            raise ValueError(f"no OCI region for {self.auth.type} auth: set one in the auth config")
        return _check_region(region)

    @property
    def tenancy_id(self) -> str | None:
        """The tenancy of the credentials, when they tell (API keys, instance and resource principals)."""
        if isinstance(self.auth, ApiKeyAuth):
            return self.auth.tenancy
        if isinstance(self.auth, ConfigFileAuth):
            tenancy: str | None = self._config_file().get("tenancy")
            return tenancy
        return getattr(self.signer(), "tenancy_id", None)

    # -- building --------------------------------------------------------------------------------------

    def service_endpoint(self, service: str, region: str) -> str | None:
        """The template's URL for ``service`` in ``region``; None means the SDK's real endpoint."""
        if service not in SERVICE_NAMES:
            raise ValueError(f"unknown OCI service {service!r}: expected one of {sorted(SERVICE_NAMES)}")
        template = self.settings.endpoint_template
        if template is None:
            return None
        return template.replace("{region}", _check_region(region)).replace("{service}", service).rstrip("/")

    def client(self, kind: str, *, region: str | None = None, endpoint: str | None = None) -> Any:
        """The cached client of ``kind`` for ``region`` (control plane) or ``endpoint`` (data plane)."""
        spec = KINDS.get(kind)
        if spec is None:
            raise ValueError(f"unknown client kind {kind!r}: expected one of {sorted(KINDS)}")
        if endpoint is not None:
            if spec.endpoint == "none":
                raise ValueError(f"{kind} clients are regional: pass a region, not an endpoint")
            endpoint = _check_data_plane_url(endpoint, f"{kind} endpoint")
        elif spec.endpoint == "required":
            raise ValueError(f"{kind} clients need the endpoint URL the resource returned")
        region = _check_region(region) if region else self.region
        key = (kind, endpoint or region)
        with self._lock:
            if self._closed:
                raise RuntimeError(f"{self!r} is closed")
            client = self._clients.get(key)
            if client is None:
                client = self._clients[key] = self._build(spec, region, endpoint)
            return client

    def _build(self, spec: ClientKind, region: str, endpoint: str | None) -> Any:
        signer = self.signer()
        config: dict[str, Any] = {}
        if isinstance(self.auth, ApiKeyAuth | ConfigFileAuth):
            # The client gets signer= and never reads the key from its config; keep the secrets out of it
            # (clients outlive calls, and tracebacks print arguments), but satisfy validate_config.
            config = {k: v for k, v in self._key_config().items() if k not in ("key_content", "pass_phrase")}
            if not config.get("key_file"):
                config["key_content"] = "<held by the factory's signer>"
        config.update(region=region, additional_user_agent=self.settings.user_agent)
        service_endpoint = endpoint or self.service_endpoint(spec.service, region)
        read = (self.settings.invoke_read_timeout_seconds if spec.name == "functions_invoke"
                else self.settings.read_timeout_seconds)
        breaker_name = f"{self.name}:{spec.name}:{endpoint or region}:{uuid.uuid4().hex[:12]}"
        kwargs: dict[str, Any] = {
            "signer": signer,
            "timeout": (self.settings.connect_timeout_seconds, read),
            "retry_strategy": self.settings.retry_for(spec.name).build(),
            "circuit_breaker_strategy": self.settings.circuit_breaker.build(breaker_name),
        }
        if service_endpoint is not None:  # wins over the region for the URL (BaseClient ignores the region then)
            kwargs["service_endpoint"] = service_endpoint
        client = spec.client_class()(config, **kwargs)
        log.debug("built OCI %s client for %s at %s (breaker %s)", spec.name, region,
                  client.base_client.endpoint, breaker_name)
        return client

    def close(self) -> None:
        """Close every client's HTTP session and unregister their breakers from the SDK's global monitor."""
        with self._lock:
            clients, self._clients, self._closed = list(self._clients.values()), {}, True
        registry = _breaker_registry()
        for client in clients:
            strategy = client.base_client.circuit_breaker_strategy
            if isinstance(strategy, oci.circuit_breaker.CircuitBreakerStrategy):
                registry.pop(strategy.name, None)
            client.base_client.session.close()

    # -- typed accessors -------------------------------------------------------------------------------

    def identity(self, region: str | None = None) -> IdentityClient:
        return self.client("identity", region=region)

    def audit(self, region: str | None = None) -> AuditClient:
        return self.client("audit", region=region)

    def stream_admin(self, region: str | None = None) -> StreamAdminClient:
        return self.client("stream_admin", region=region)

    def stream(self, messages_endpoint: str) -> StreamClient:
        """The data plane of a stream: ``stream.messages_endpoint``."""
        return self.client("stream", endpoint=messages_endpoint)

    def notification_control(self, region: str | None = None) -> NotificationControlPlaneClient:
        return self.client("notification_control", region=region)

    def notification_data(self, endpoint: str | None = None,
                          region: str | None = None) -> NotificationDataPlaneClient:
        """Publishing: on ``topic.api_endpoint`` when given, else the region's endpoint."""
        return self.client("notification_data", region=region, endpoint=endpoint)

    def events(self, region: str | None = None) -> EventsClient:
        return self.client("events", region=region)

    def functions_management(self, region: str | None = None) -> FunctionsManagementClient:
        return self.client("functions_management", region=region)

    def functions_invoke(self, invoke_endpoint: str) -> FunctionsInvokeClient:
        """Invoking: on ``function.invoke_endpoint``."""
        return self.client("functions_invoke", endpoint=invoke_endpoint)

    def schedules(self, region: str | None = None) -> ScheduleClient:
        return self.client("schedules", region=region)

    def autoscaling(self, region: str | None = None) -> AutoScalingClient:
        return self.client("autoscaling", region=region)

    def compute_management(self, region: str | None = None) -> ComputeManagementClient:
        return self.client("compute_management", region=region)

    def vaults(self, region: str | None = None) -> VaultsClient:
        return self.client("vaults", region=region)

    def secrets(self, region: str | None = None) -> SecretsClient:
        return self.client("secrets", region=region)


def _breaker_registry() -> dict[str, Any]:
    """``circuitbreaker.CircuitBreakerMonitor``'s name → breaker map (process-wide, never pruned by the SDK)."""
    from circuitbreaker import CircuitBreakerMonitor

    registry: dict[str, Any] = CircuitBreakerMonitor.circuit_breakers
    return registry
