"""The operator's Prometheus metrics (served by ``siem-operator run --metrics-port``).

Labels hold no namespace, name or OCID: cardinality stays bounded by kinds, services and outcomes.
"""

from __future__ import annotations

import threading
from collections import Counter as Tally
from collections.abc import Iterable
from typing import Final

from prometheus_client import Counter, Gauge, Histogram

RECONCILES: Final = Counter("siem_operator_reconciles", "Reconciles of SiemPipelines, by trigger and outcome.",
                            ["trigger", "outcome"])
RECONCILE_DURATION: Final = Histogram("siem_operator_reconcile_duration_seconds",
                                      "Duration of a reconcile, by outcome.", ["outcome"],
                                      buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120))
RECONCILE_ERRORS: Final = Counter("siem_operator_reconcile_errors", "Reconciles that ended in an error, by reason.",
                                  ["reason"])
OCI_CALLS: Final = Counter("siem_operator_oci_calls", "OCI SDK calls, by service, operation and HTTP status.",
                           ["service", "operation", "status"])
OCI_ACTIONS: Final = Counter("siem_operator_oci_actions", "Create / update / delete actions on child resources.",
                             ["kind", "action", "result"])
CHILDREN: Final = Gauge("siem_operator_children", "Child OCI resources of every pipeline, by kind and state.",
                        ["kind", "state"])
OCI_FACTORIES: Final = Gauge("siem_operator_oci_factories", "OCI client factories open (one per credentials).")

_lock = threading.Lock()
_children: dict[str, Tally[tuple[str, str]]] = {}
_published: set[tuple[str, str]] = set()


def record_children(pipeline_uid: str, states: Iterable[tuple[str, str]]) -> None:
    """Replace the (kind, state) pairs of one pipeline and republish the totals."""
    with _lock:
        _children[pipeline_uid] = Tally(states)
        _publish()


def forget_children(pipeline_uid: str) -> None:
    with _lock:
        _children.pop(pipeline_uid, None)
        _publish()


def _publish() -> None:
    totals: Tally[tuple[str, str]] = Tally()
    for tally in _children.values():
        totals.update(tally)
    for kind, state in _published - set(totals):  # labels no longer present go to zero rather than vanish
        CHILDREN.labels(kind=kind, state=state).set(0)
    for (kind, state), count in totals.items():
        CHILDREN.labels(kind=kind, state=state).set(count)
    _published.update(totals)
