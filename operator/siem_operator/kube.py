"""The operator's own Kubernetes calls besides kopf's: read Secrets, write a SiemPipeline's status now.

kopf applies a handler's patch only when the handler returns; the reconciler must record a child's
intent and OCID the moment they are known (a crash between an OCI create and the status write must not
lose it), so it patches the status subresource itself, through the ``kubernetes`` client.
Secret values are returned decoded and are never logged here.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Mapping
from typing import Any, Protocol

from siem_operator.spec import GROUP, PLURAL, VERSION

log = logging.getLogger(__name__)


class KubeApi(Protocol):
    def read_secret(self, namespace: str, name: str) -> dict[str, str] | None:
        """The Secret's data, decoded as UTF-8 text; None when it does not exist."""
        ...

    def read_status(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The SiemPipeline's current status ({} when it has none); None when the object is gone."""
        ...

    def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        """Merge-patch the SiemPipeline's status subresource (lists are replaced whole)."""
        ...


def _decode(data: Mapping[str, Any] | None, string_data: Mapping[str, Any] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in (data or {}).items():
        try:
            out[key] = base64.b64decode(value or b"").decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            log.warning("Secret key %r is not base64-encoded UTF-8 text; ignored", key)
    out.update({k: str(v) for k, v in (string_data or {}).items()})
    return out


class KubernetesApi:
    """:class:`KubeApi` over the ``kubernetes`` client: in-cluster config, else ``KUBECONFIG``."""

    def __init__(self, api_client: Any | None = None) -> None:
        import os

        import kubernetes

        if api_client is None:
            try:
                configuration = kubernetes.client.Configuration()
                kubernetes.config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
                api_client = kubernetes.client.ApiClient(configuration)
            except kubernetes.config.ConfigException:
                # KUBECONFIG as it is now: the package read it at import
                api_client = kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call]
                    config_file=os.environ.get("KUBECONFIG") or None)
        self.api_client = api_client
        self.core = kubernetes.client.CoreV1Api(api_client)
        self.custom = kubernetes.client.CustomObjectsApi(api_client)
        self._errors = kubernetes.client.ApiException

    def read_secret(self, namespace: str, name: str) -> dict[str, str] | None:
        try:
            secret = self.core.read_namespaced_secret(name, namespace)
        except self._errors as exc:
            if exc.status == 404:
                return None
            raise
        return _decode(secret.data, secret.string_data)

    def read_status(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            body: dict[str, Any] = self.custom.get_namespaced_custom_object(  # type: ignore[assignment]
                GROUP, VERSION, namespace, PLURAL, name)
        except self._errors as exc:
            if exc.status == 404:
                return None
            raise
        return dict(body.get("status") or {})

    def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, PLURAL, name, {"status": dict(status)},
            _content_type="application/merge-patch+json")

    def close(self) -> None:
        self.api_client.close()
