"""Functions resources: applications and functions as stored, as each API version returns them, as requested.

Two API versions are served. ``20181201`` (the SDK before 2.188, and every raw client written for it)
puts a function's code at the top level (``image``, ``imageDigest``; ``sourceDetails`` only for
pre-built functions). ``20260325`` (SDK 2.188+, OCI CLI 3.7x+) nests it in ``sourceDetails``
(``CONTAINER_IMAGE``, ``ARCHIVE``, ``PRE_BUILT_FUNCTIONS``). Both versions share one store; only the
request parsing and the rendering differ, so a function created on one version reads fine on the other.

The JSON functions give each shape exactly the keys of the SDK models (``Application``,
``ApplicationSummary``, ``Function``, ``FunctionSummary``); the ``parse_*`` helpers give the 400s.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import itertools
import re
import secrets
from typing import Any

from ocisim import errors
from ocisim.clock import rfc3339
from ocisim.framework import Call, Lifecycle, field

OLD_VERSION = "20181201"
NEW_VERSION = "20260325"
STATES = ("CREATING", "ACTIVE", "INACTIVE", "UPDATING", "DELETING", "DELETED", "FAILED")
SHAPES = ("GENERIC_X86", "GENERIC_ARM", "GENERIC_X86_ARM")
MIN_MEMORY_MB, MAX_MEMORY_MB = 128, 3072
DEFAULT_TIMEOUT, MAX_TIMEOUT = 30, 300
MIN_DETACHED_TIMEOUT, MAX_DETACHED_TIMEOUT = 5, 3600
#: The combined size of an application's and a function's configuration.
MAX_CONFIG_BYTES = 4096
_CONFIG_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_SEQ = itertools.count()


@dataclasses.dataclass
class Application:
    id: str
    compartment_id: str
    display_name: str
    lifecycle: Lifecycle
    config: dict[str, str]
    subnet_ids: list[str]
    shape: str
    nsg_ids: list[str]
    syslog_url: str | None
    trace_config: dict[str, Any]
    logging: dict[str, Any] | None
    image_policy_config: dict[str, Any]
    security_attributes: dict[str, Any]
    freeform_tags: dict[str, str]
    defined_tags: dict[str, dict[str, Any]]
    time_created: float
    time_updated: float
    time_deleted: float | None = None
    etag: str = dataclasses.field(default_factory=lambda: secrets.token_hex(16))
    seq: int = dataclasses.field(default_factory=lambda: next(_SEQ))


@dataclasses.dataclass
class Function:
    id: str
    display_name: str
    application_id: str
    compartment_id: str
    lifecycle: Lifecycle
    #: the source in the 20260325 shape (``sourceType`` plus its fields)
    source: dict[str, Any]
    shape: str
    memory_mb: int
    config: dict[str, str]
    timeout: int
    detached_timeout: int | None
    provisioned_concurrency: dict[str, Any]
    success_destination: dict[str, Any]
    failure_destination: dict[str, Any]
    trace_config: dict[str, Any]
    freeform_tags: dict[str, str]
    defined_tags: dict[str, dict[str, Any]]
    time_created: float
    time_updated: float
    time_deleted: float | None = None
    etag: str = dataclasses.field(default_factory=lambda: secrets.token_hex(16))
    seq: int = dataclasses.field(default_factory=lambda: next(_SEQ))

    @property
    def image(self) -> str | None:
        return self.source.get("image") if self.source.get("sourceType") == "CONTAINER_IMAGE" else None


@dataclasses.dataclass
class RegionState:
    applications: dict[str, Application] = dataclasses.field(default_factory=dict)
    functions: dict[str, Function] = dataclasses.field(default_factory=dict)


def api_version(call: Call) -> str:
    """The API version a call came in on (``/<region>/functions/<version>/...``)."""
    parts = call.request.path.split("/")
    return parts[3] if len(parts) > 3 else NEW_VERSION


# -- rendering -------------------------------------------------------------------------------------


def application_json(app: Application, now: float, *, summary: bool = False) -> dict[str, Any]:
    """An ``Application`` (or ``ApplicationSummary``, without ``config`` and ``syslogUrl``)."""
    out: dict[str, Any] = {
        "id": app.id, "compartmentId": app.compartment_id, "displayName": app.display_name,
        "lifecycleState": app.lifecycle.settle(now), "subnetIds": list(app.subnet_ids), "shape": app.shape,
        "networkSecurityGroupIds": list(app.nsg_ids), "traceConfig": app.trace_config,
        "freeformTags": app.freeform_tags, "definedTags": app.defined_tags,
        "timeCreated": rfc3339(app.time_created), "timeUpdated": rfc3339(app.time_updated),
        "imagePolicyConfig": app.image_policy_config, "securityAttributes": app.security_attributes,
    }
    if app.logging is not None:
        out["logging"] = app.logging
    if not summary:
        out["config"] = dict(app.config)
        if app.syslog_url is not None:
            out["syslogUrl"] = app.syslog_url
    return out


def function_json(fn: Function, endpoint: str, now: float, version: str, *, summary: bool = False) -> dict[str, Any]:
    """A ``Function`` (or ``FunctionSummary``, without ``config``) in ``version``'s shape."""
    out: dict[str, Any] = {
        "id": fn.id, "displayName": fn.display_name, "lifecycleState": fn.lifecycle.settle(now),
        "applicationId": fn.application_id, "compartmentId": fn.compartment_id, "shape": fn.shape,
        "memoryInMBs": fn.memory_mb, "timeoutInSeconds": fn.timeout,
        "provisionedConcurrencyConfig": fn.provisioned_concurrency,
        "failureDestination": fn.failure_destination, "successDestination": fn.success_destination,
        "traceConfig": fn.trace_config, "freeformTags": fn.freeform_tags, "invokeEndpoint": endpoint,
        "definedTags": fn.defined_tags, "timeCreated": rfc3339(fn.time_created),
        "timeUpdated": rfc3339(fn.time_updated),
    }
    if fn.detached_timeout is not None:
        out["detachedModeTimeoutInSeconds"] = fn.detached_timeout
    if not summary:
        out["config"] = dict(fn.config)
    source_type = fn.source.get("sourceType")
    if version == OLD_VERSION and source_type == "CONTAINER_IMAGE":
        out["image"] = fn.source["image"]
        out["imageDigest"] = fn.source["imageDigest"]
    else:
        out["sourceDetails"] = dict(fn.source)
    return out


# -- request parsing ---------------------------------------------------------------------------------


def parse_name(body: dict[str, Any], what: str) -> str:
    name: str = field(body, "displayName", str, required=True)
    if not _NAME.match(name):
        raise errors.invalid(f"The {what} 'displayName' must be 1 to 255 letters, digits, '-' or '_'.")
    return name


def parse_config(body: dict[str, Any]) -> dict[str, str]:
    config = field(body, "config", dict, default={})
    for key, value in config.items():
        if not _CONFIG_KEY.match(key):
            raise errors.invalid(f"Configuration key '{key}' is invalid: keys match [A-Za-z_][A-Za-z0-9_]*.")
        if not isinstance(value, str):
            raise errors.invalid(f"Configuration value of '{key}' must be a string.")
    return dict(config)


def config_size(config: dict[str, str]) -> int:
    return sum(len(k.encode()) + len(v.encode()) for k, v in config.items())


def check_config_size(app_config: dict[str, str], fn_config: dict[str, str], function_name: str | None) -> None:
    """OCI bounds an application's configuration plus each function's at 4 KB."""
    total = config_size(app_config) + config_size(fn_config)
    if total > MAX_CONFIG_BYTES:
        where = f" for function '{function_name}'" if function_name else ""
        raise errors.invalid(f"The combined application and function configuration{where} is {total} bytes; "
                             f"the limit is {MAX_CONFIG_BYTES} bytes.")


def parse_string_list(body: dict[str, Any], name: str, *, required: bool = False) -> list[str]:
    values = field(body, name, list, required=required, default=[])
    if required and not values:
        raise errors.missing(name)
    if not all(isinstance(v, str) and v for v in values):
        raise errors.invalid(f"'{name}' must be a list of OCIDs.")
    return list(values)


def parse_shape(body: dict[str, Any]) -> str:
    shape: str = field(body, "shape", str, default="GENERIC_X86")
    if shape not in SHAPES:
        raise errors.invalid(f"'shape' must be one of {list(SHAPES)}.")
    return shape


def parse_trace_config(body: dict[str, Any], *, application: bool) -> dict[str, Any]:
    value = field(body, "traceConfig", dict, default={})
    enabled = field(value, "isEnabled", bool, default=False)
    out: dict[str, Any] = {"isEnabled": enabled}
    if application:
        out["domainId"] = field(value, "domainId", str)
        if enabled and not out["domainId"]:
            raise errors.invalid("'traceConfig.domainId' is required when tracing is enabled.")
    return out


def parse_logging(body: dict[str, Any]) -> dict[str, Any] | None:
    value = field(body, "logging", dict)
    if value is None:
        return None
    line_format = field(value, "lineFormat", str, default="PLAIN_TEXT")
    if line_format not in ("JSON", "PLAIN_TEXT"):
        raise errors.invalid("'logging.lineFormat' must be JSON or PLAIN_TEXT.")
    return {"lineFormat": line_format}


def parse_image_policy(body: dict[str, Any]) -> dict[str, Any]:
    value = field(body, "imagePolicyConfig", dict, default={})
    enabled = field(value, "isPolicyEnabled", bool, default=False)
    keys = field(value, "keyDetails", list, default=[])
    if not all(isinstance(k, dict) and isinstance(k.get("kmsKeyId"), str) for k in keys):
        raise errors.invalid("'imagePolicyConfig.keyDetails' must be a list of {kmsKeyId}.")
    if enabled and not keys:
        raise errors.invalid("'imagePolicyConfig.keyDetails' is required when the image policy is enabled.")
    return {"isPolicyEnabled": enabled, "keyDetails": [{"kmsKeyId": k["kmsKeyId"]} for k in keys]}


def parse_memory(body: dict[str, Any], *, required: bool, default: int | None = None) -> int:
    memory: int = field(body, "memoryInMBs", int, required=required, default=default)
    if not MIN_MEMORY_MB <= memory <= MAX_MEMORY_MB:
        raise errors.invalid(f"'memoryInMBs' must be between {MIN_MEMORY_MB} and {MAX_MEMORY_MB}.")
    return memory


def parse_timeout(body: dict[str, Any], default: int) -> int:
    timeout: int = field(body, "timeoutInSeconds", int, default=default)
    if not 1 <= timeout <= MAX_TIMEOUT:
        raise errors.invalid(f"'timeoutInSeconds' must be between 1 and {MAX_TIMEOUT}.")
    return timeout


def parse_detached_timeout(body: dict[str, Any], default: int | None) -> int | None:
    value: int | None = field(body, "detachedModeTimeoutInSeconds", int, default=default)
    if value is not None and not MIN_DETACHED_TIMEOUT <= value <= MAX_DETACHED_TIMEOUT:
        raise errors.invalid(f"'detachedModeTimeoutInSeconds' must be between {MIN_DETACHED_TIMEOUT} and "
                             f"{MAX_DETACHED_TIMEOUT}.")
    return value


def parse_concurrency(body: dict[str, Any], default: dict[str, Any]) -> dict[str, Any]:
    value = field(body, "provisionedConcurrencyConfig", dict)
    if value is None:
        return default
    strategy = field(value, "strategy", str, required=True)
    if strategy == "NONE":
        return {"strategy": "NONE"}
    if strategy != "CONSTANT":
        raise errors.invalid("'provisionedConcurrencyConfig.strategy' must be CONSTANT or NONE.")
    count = field(value, "count", int, required=True)
    if count < 1:
        raise errors.invalid("'provisionedConcurrencyConfig.count' must be positive.")
    return {"strategy": "CONSTANT", "count": count}


_DESTINATION_FIELDS = {"NONE": (), "STREAM": ("streamId",), "NOTIFICATION": ("topicId",),
                       "QUEUE": ("queueId", "channelId")}


def parse_destination(body: dict[str, Any], name: str, default: dict[str, Any]) -> dict[str, Any]:
    value = field(body, name, dict)
    if value is None:
        return default
    kind = field(value, "kind", str, required=True)
    if kind not in _DESTINATION_FIELDS:
        raise errors.invalid(f"'{name}.kind' must be one of {sorted(_DESTINATION_FIELDS)}.")
    out: dict[str, Any] = {"kind": kind}
    for i, key in enumerate(_DESTINATION_FIELDS[kind]):
        out[key] = field(value, key, str, required=i == 0)  # QUEUE's channelId is optional
    return out


def default_digest(image: str) -> str:
    """What OCI would resolve a tag to; ocisim has no registry, so a stable hash of the reference."""
    return "sha256:" + hashlib.sha256(image.encode()).hexdigest()


def _container_source(image: Any, digest: Any, prefix: str) -> dict[str, Any]:
    if not isinstance(image, str) or not image.strip():
        raise errors.missing(f"{prefix}image")
    if len(image) > 255 or any(c.isspace() for c in image):
        raise errors.invalid(f"'{prefix}image' is not a valid image reference.")
    if digest is not None and (not isinstance(digest, str) or not _DIGEST.match(digest)):
        raise errors.invalid(f"'{prefix}imageDigest' must look like sha256:<64 hex digits>.")
    return {"sourceType": "CONTAINER_IMAGE", "image": image, "imageDigest": digest or default_digest(image)}


def _archive_source(details: dict[str, Any]) -> dict[str, Any]:
    archive = field(details, "archiveSourceDetails", dict, required=True)
    kind = field(archive, "archiveSourceType", str, required=True)
    if kind == "DIRECT_ARCHIVE":
        encoded = field(archive, "archiveFile", str, required=True)
        try:
            raw = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise errors.invalid("'archiveSourceDetails.archiveFile' must be base64.") from exc
        stored: dict[str, Any] = {"archiveSourceType": kind}
        digest = base64.b64encode(hashlib.sha256(raw).digest()).decode()
    elif kind == "OBJECT_STORAGE_ARCHIVE":
        stored = {"archiveSourceType": kind}
        for key in ("bucketName", "namespace", "objectName"):
            stored[key] = field(archive, key, str, required=True)
        stored["objectVersionId"] = field(archive, "objectVersionId", str)
        digest = base64.b64encode(hashlib.sha256(repr(sorted(stored.items())).encode()).digest()).decode()
    else:
        raise errors.invalid("'archiveSourceType' must be DIRECT_ARCHIVE or OBJECT_STORAGE_ARCHIVE.")
    runtime = field(details, "runtimeConfig", dict, default={})
    runtime_type = field(runtime, "runtimeConfigType", str, default="MANUAL")
    if runtime_type not in ("MANUAL", "FUNCTION_UPDATE"):
        raise errors.invalid("'runtimeConfig.runtimeConfigType' must be MANUAL or FUNCTION_UPDATE.")
    return {
        "sourceType": "ARCHIVE", "archiveSourceDetails": stored,
        "handler": field(details, "handler", str, required=True),
        "runtimeConfig": {"runtimeConfigType": runtime_type,
                          "functionsRuntimeName": field(runtime, "functionsRuntimeName", str),
                          "functionsRuntimeVersionId": field(runtime, "functionsRuntimeVersionId", str)},
        "sourceCodeSha256": digest,
    }


def parse_source(body: dict[str, Any], version: str, *, required: bool,
                 current: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The function's source from a create or update body, in the new shape (None: unchanged)."""
    if version == OLD_VERSION and ("image" in body or "imageDigest" in body):
        image = body.get("image", current.get("image") if current else None)
        return _container_source(image, body.get("imageDigest"), "")
    details = field(body, "sourceDetails", dict)
    if details is None:
        if required:
            raise errors.missing("image" if version == OLD_VERSION else "sourceDetails")
        return None
    kind = field(details, "sourceType", str, required=True)
    if kind == "CONTAINER_IMAGE":
        return _container_source(details.get("image"), details.get("imageDigest"), "sourceDetails.")
    if kind == "ARCHIVE":
        return _archive_source(details)
    if kind == "PRE_BUILT_FUNCTIONS":
        if current is not None:
            raise errors.invalid("A function's source cannot be changed to a pre-built function.")
        return {"sourceType": kind, "pbfListingId": field(details, "pbfListingId", str, required=True)}
    raise errors.invalid("'sourceDetails.sourceType' must be CONTAINER_IMAGE, ARCHIVE or PRE_BUILT_FUNCTIONS.")


def state_filter(call: Call) -> str | None:
    state = call.query("lifecycleState")
    if state is None:
        return None
    if state.upper() not in STATES:
        raise errors.invalid(f"'lifecycleState' must be one of {list(STATES)}.")
    return state.upper()


def visible(state: str, wanted: str | None) -> bool:
    """Deleted resources are listed only when asked for by state."""
    return state == wanted if wanted is not None else state != "DELETED"


def require_active(state: str, what: str) -> None:
    if state != "ACTIVE":
        raise errors.incorrect_state(f"The {what} is {state}; the operation needs it ACTIVE.")
