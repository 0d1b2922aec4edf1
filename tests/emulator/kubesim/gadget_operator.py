"""A tiny kopf operator for kubesim's end-to-end test: it sees a create, writes status and a Ready
condition, posts Events, and holds a finalizer until its delete handler has run.

Run against kubesim by ``kopf.testing.KopfRunner`` in the test process (logging in from
``KUBESIM_URL``) and by a ``kopf run`` subprocess (logging in from ``KUBECONFIG``).
"""

from __future__ import annotations

import os
from typing import Any

import kopf


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.peering.standalone = True
    settings.persistence.finalizer = "kubesim.test/finalizer"
    settings.networking.error_backoffs = [0.2, 0.5, 1]
    settings.watching.reconnect_backoff = 0.2
    settings.watching.server_timeout = 30
    settings.posting.level = 0


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In the test process ``KUBESIM_URL`` names the server; a ``kopf run`` process reads ``KUBECONFIG``."""
    if "KUBESIM_URL" in os.environ:
        return kopf.ConnectionInfo(server=os.environ["KUBESIM_URL"], insecure=True, default_namespace="default")
    info: kopf.ConnectionInfo | None = kopf.login_via_client(**kwargs)
    return info


@kopf.on.create("kubesim.test", "v1", "gadgets")
def created(body: kopf.Body, spec: kopf.Spec, meta: kopf.Meta, patch: kopf.Patch, **_: Any) -> None:
    patch.status["phase"] = "Ready"
    patch.status["observedSize"] = spec.get("size")
    patch.status["conditions"] = [{"type": "Ready", "status": "True", "reason": "Provisioned",
                                   "message": "the gadget is ready", "observedGeneration": meta.get("generation")}]
    kopf.info(body, reason="Provisioned", message=f"gadget {meta['name']} of size {spec.get('size')} is ready")


@kopf.on.delete("kubesim.test", "v1", "gadgets")
def deleted(body: kopf.Body, meta: kopf.Meta, **_: Any) -> None:
    kopf.info(body, reason="Released", message=f"gadget {meta['name']} released")
