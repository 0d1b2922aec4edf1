"""kopf runs on kubesim end to end: create → status and Event; delete → finalizer handled, object gone."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import kopf.testing
import kubernetes
import pytest

from kubesim.app import KubesimServer
from tests.emulator.kubesim.support import CRD_PATH, GROUP, PLURAL, VERSION, gadget

OPERATOR = Path(__file__).parent / "gadget_operator.py"


def wait_for(check: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(0.05)


@pytest.fixture
def own_registry() -> Iterator[kopf.OperatorRegistry]:
    """kopf registers the handlers of a file it loads in its process-wide default registry: the gadget operator's
    (its login activity among them) would then run in every later in-process operator of the suite. This test's
    operator gets a registry of its own, and the default one is put back after it."""
    saved = kopf.get_default_registry()
    registry = kopf.OperatorRegistry()
    kopf.set_default_registry(registry)
    try:
        yield registry
    finally:
        kopf.set_default_registry(saved)


def test_kopf_operator_lifecycle(kubesim: KubesimServer, kubesim_client: Any, monkeypatch: pytest.MonkeyPatch,
                                 own_registry: kopf.OperatorRegistry) -> None:
    kubesim.register_crd(CRD_PATH)
    monkeypatch.setenv("KUBESIM_URL", kubesim.url)
    objects = kubernetes.client.CustomObjectsApi(kubesim_client)
    core = kubernetes.client.CoreV1Api(kubesim_client)

    def get() -> dict[str, Any]:
        return cast(dict[str, Any], objects.get_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "g1"))

    def reasons(uid: str) -> list[str]:
        listed = core.list_namespaced_event("default", field_selector=f"involvedObject.uid={uid}")
        return [e.reason or "" for e in listed.items]

    with kopf.testing.KopfRunner(["run", "--standalone", "--all-namespaces", str(OPERATOR)], timeout=60,
                                 registry=own_registry) as runner:
        objects.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, gadget("g1", size=4))
        ready = wait_for(lambda: (obj := get()).get("status", {}).get("phase") == "Ready" and obj)
        uid = ready["metadata"]["uid"]
        assert ready["status"]["observedSize"] == 4
        assert ready["status"]["conditions"][0]["observedGeneration"] == ready["metadata"]["generation"] == 1
        assert "kubesim.test/finalizer" in ready["metadata"]["finalizers"]
        assert wait_for(lambda: "Provisioned" in reasons(uid))

        objects.delete_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "g1")

        def gone() -> bool:
            try:
                get()
            except kubernetes.client.ApiException as exc:
                return bool(exc.status == 404)
            return False

        wait_for(gone)
        assert wait_for(lambda: "Released" in reasons(uid))  # kopf posts Events from a background queue

    failure: BaseException | None = runner.exception
    assert failure is None, runner.output
    assert runner.exit_code == 0, runner.output


def test_kopf_run_process_logs_in_from_the_kubeconfig(kubesim: KubesimServer, kubesim_client: Any,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    kubesim.register_crd(CRD_PATH)
    monkeypatch.delenv("KUBESIM_URL", raising=False)
    env = {**os.environ, **kubesim.client_env()}
    process = subprocess.Popen([sys.executable, "-m", "kopf", "run", "--standalone", "--all-namespaces", str(OPERATOR)],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        objects = kubernetes.client.CustomObjectsApi(kubesim_client)
        objects.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, gadget("g2"))

        def phase() -> Any:
            found = cast(dict[str, Any], objects.get_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "g2"))
            return found.get("status", {}).get("phase")

        assert wait_for(lambda: phase() == "Ready", timeout=30)
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
    assert "Activity 'login' succeeded" in output
    assert process.returncode == 0, output
