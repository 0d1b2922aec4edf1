"""OCI client factories for the operator: one per set of credentials, shared, metered and closed when unused.

One operator serves many tenancies, so each ``SiemPipeline`` names its own credentials
(``spec.credentials``): OKE workload identity, the node's instance principal, or an API key read from a
Kubernetes Secret. :func:`auth_for` turns them into the project's :data:`~siem_pipeline.oci_clients.OciAuth`;
:class:`FactoryCache` keeps one :class:`MeteredFactory` per distinct auth (API keys compare by value, so a
rotated key gets a new factory) and closes a factory as soon as no pipeline uses it any more.

:class:`MeteredFactory` is the project's :class:`~siem_pipeline.oci_clients.OciClientFactory` whose clients
are handed out behind a thin proxy that counts every public SDK call by service, operation and HTTP status
(:data:`siem_operator.metrics.OCI_CALLS`). The SDK itself is not touched.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

import oci

from siem_operator import metrics
from siem_operator.adapters import build_adapters
from siem_operator.children import Adapter, ChildKind
from siem_operator.spec import Credentials, CredentialsType
from siem_pipeline.oci_clients import (
    KINDS,
    ApiKeyAuth,
    ClientSettings,
    InstancePrincipalAuth,
    OciAuth,
    OciClientFactory,
    RetryPolicy,
    WorkloadIdentityAuth,
)

#: the keys of an ApiKey credentials Secret (spec.credentials.secretRef)
API_KEY_FIELDS: Final = ("user", "fingerprint", "privateKey", "passphrase")


#: the operator's retries inside one call: brief, because a worker must not wait long and kopf retries the whole
#: reconcile with the backoff of the classified error (:mod:`siem_operator.errors`)
OPERATOR_RETRY: Final = RetryPolicy(max_attempts=3, total_elapsed_seconds=30.0, max_wait_seconds=5.0)


def operator_settings(environ: Mapping[str, str] | None = None) -> ClientSettings:
    """:meth:`ClientSettings.from_env`, with :data:`OPERATOR_RETRY` unless ``SIEM_OCI_RETRY_*`` says otherwise."""
    env = os.environ if environ is None else environ
    settings = ClientSettings.from_env(env)
    if not env.get("SIEM_OCI_RETRY_MAX_ATTEMPTS") and not env.get("SIEM_OCI_RETRY_MAX_SECONDS"):
        settings = settings.model_copy(update={"retry": OPERATOR_RETRY})
    return settings


class CredentialsSecretInvalid(ValueError):
    """The ApiKey Secret lacks a key or holds a malformed value; the message names keys, never values."""


def auth_for(credentials: Credentials, *, tenancy_id: str, region: str,
             secret_data: Mapping[str, str] | None = None) -> OciAuth:
    """The auth of a pipeline; ``secret_data`` is the decoded ApiKey Secret (needed for type ApiKey)."""
    if credentials.type is CredentialsType.WORKLOAD_IDENTITY:
        return WorkloadIdentityAuth(region=region)
    if credentials.type is CredentialsType.INSTANCE_PRINCIPAL:
        return InstancePrincipalAuth(region=region)
    assert credentials.secret_ref is not None  # the spec's validator says so
    data = secret_data or {}
    missing = [key for key in API_KEY_FIELDS[:3] if not data.get(key)]
    if missing:
        raise CredentialsSecretInvalid(f"the credentials Secret {credentials.secret_ref.name!r} lacks the key(s) "
                                       f"{', '.join(missing)}: it needs user, fingerprint and privateKey "
                                       "(and optionally passphrase)")
    try:
        return ApiKeyAuth(user=data["user"].strip(), tenancy=tenancy_id, fingerprint=data["fingerprint"],
                          private_key=data["privateKey"], passphrase=data.get("passphrase") or None, region=region)
    except ValueError as exc:
        # pydantic's message quotes the input; name the fields only
        secret_keys = {"user": "user", "fingerprint": "fingerprint", "private_key": "privateKey",
                       "passphrase": "passphrase"}
        fields = sorted({secret_keys.get(str(e["loc"][0]), str(e["loc"][0]))
                         for e in getattr(exc, "errors", list)() if e.get("loc")})
        raise CredentialsSecretInvalid(f"the credentials Secret {credentials.secret_ref.name!r} has invalid "
                                       f"{', '.join(fields) or 'values'}") from None


class _MeteredClient:
    """Forwards everything to ``client``; public methods are counted in :data:`metrics.OCI_CALLS`."""

    def __init__(self, client: Any, service: str) -> None:
        self._client = client
        self._service = service

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if name.startswith("_") or not callable(attribute):
            return attribute
        return _metered(attribute, self._service, name)

    def __repr__(self) -> str:
        return f"metered({self._client!r})"


def _metered(method: Callable[..., Any], service: str, operation: str) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        status = "error"
        try:
            response = method(*args, **kwargs)
            status = str(getattr(response, "status", None) or "ok")
            return response
        except oci.exceptions.ServiceError as exc:
            status = str(exc.status)
            raise
        finally:
            metrics.OCI_CALLS.labels(service=service, operation=operation, status=status).inc()

    return call


class MeteredFactory(OciClientFactory):
    """An :class:`OciClientFactory` whose clients count their calls."""

    def client(self, kind: str, *, region: str | None = None, endpoint: str | None = None) -> Any:
        raw = super().client(kind, region=region, endpoint=endpoint)
        return _MeteredClient(raw, KINDS[kind].service)


class FactoryCache:
    """One factory per distinct auth, shared by the pipelines using it, closed when the last one leaves."""

    def __init__(self, settings: ClientSettings | None = None) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._factories: dict[OciAuth, MeteredFactory] = {}
        self._users: dict[OciAuth, set[str]] = {}
        self._auth_of: dict[str, OciAuth] = {}
        self._last_used: dict[OciAuth, float] = {}
        self._adapters: dict[tuple[OciAuth, str], dict[ChildKind, Adapter]] = {}

    def adapters(self, pipeline_uid: str, auth: OciAuth,
                 region: str) -> tuple[MeteredFactory, dict[ChildKind, Adapter]]:
        """The factory for ``auth`` and its adapters for ``region``, kept with it (their caches, such as the
        vault secret adapter's content digests, then last as long as the credentials are in use)."""
        factory = self.acquire(pipeline_uid, auth)
        with self._lock:
            built = self._adapters.get((auth, region))
            if built is None:
                built = self._adapters[(auth, region)] = build_adapters(factory, region)
            return factory, built

    def acquire(self, pipeline_uid: str, auth: OciAuth) -> MeteredFactory:
        """The factory for ``auth``; a pipeline that switched credentials releases its previous factory."""
        with self._lock:
            previous = self._auth_of.get(pipeline_uid)
            if previous is not None and previous != auth:
                self._leave(pipeline_uid, previous)
            factory = self._factories.get(auth)
            if factory is None:
                settings = self.settings if self.settings is not None else operator_settings()
                factory = self._factories[auth] = MeteredFactory(auth, settings, name="siem-operator")
                metrics.OCI_FACTORIES.set(len(self._factories))
            self._users.setdefault(auth, set()).add(pipeline_uid)
            self._auth_of[pipeline_uid] = auth
            self._last_used[auth] = time.monotonic()
            return factory

    def release(self, pipeline_uid: str) -> None:
        """The pipeline is gone: close its factory if nobody else uses it."""
        with self._lock:
            auth = self._auth_of.pop(pipeline_uid, None)
            if auth is not None:
                self._leave(pipeline_uid, auth)

    def _leave(self, pipeline_uid: str, auth: OciAuth) -> None:
        users = self._users.get(auth, set())
        users.discard(pipeline_uid)
        if not users:
            self._users.pop(auth, None)
            self._last_used.pop(auth, None)
            factory = self._factories.pop(auth, None)
            for key in [k for k in self._adapters if k[0] == auth]:
                del self._adapters[key]
            if factory is not None:
                factory.close()
            metrics.OCI_FACTORIES.set(len(self._factories))

    def __len__(self) -> int:
        return len(self._factories)

    def close(self) -> None:
        with self._lock:
            factories, self._factories = list(self._factories.values()), {}
            self._users.clear()
            self._auth_of.clear()
            self._last_used.clear()
            self._adapters.clear()
        for factory in factories:
            factory.close()
        metrics.OCI_FACTORIES.set(0)
