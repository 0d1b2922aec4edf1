"""``siem_operator.logs``: kopf's formatters with the fields the chart's log collectors rely on, and the object
of the handler a record was logged in (in-process; the JSON of a real operator process is in test_metrics)."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from siem_operator import logs

BODY = {"apiVersion": "siem.ocisiem.io/v1alpha1", "kind": "SiemPipeline",
        "metadata": {"name": "audit", "namespace": "security", "uid": "u-1"}, "spec": {"secret": "never"}}


@pytest.fixture
def restore_root_logger() -> Iterator[None]:
    root, quiet = logging.getLogger(), logging.getLogger("asyncio")  # kopf.configure changes both
    handlers, level = list(root.handlers), root.level
    asyncio_handlers, asyncio_propagate = list(quiet.handlers), quiet.propagate
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    quiet.handlers[:] = asyncio_handlers
    quiet.propagate = asyncio_propagate


def configured(log_format: str) -> io.StringIO:
    handler = logs.configure(log_format)
    stream = io.StringIO()
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    return stream


@logs.object_context
def handler(body: Any = None, fail: bool = False) -> str:
    logging.getLogger("siem_operator.reconciler").warning("inside %s", "the handler")
    if fail:
        raise RuntimeError("boom")
    return "done"


@pytest.mark.usefixtures("restore_root_logger")
def test_json_lines_carry_the_fields_and_the_handlers_object() -> None:
    stream = configured("json")
    assert handler(body=BODY) == "done"
    logging.getLogger("siem_operator.cli").info("outside")
    with pytest.raises(RuntimeError):
        handler(body=BODY, fail=True)
    try:
        raise ValueError("traced")
    except ValueError:
        logging.getLogger("siem_operator.x").exception("with a traceback")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(r["level"], r["logger"], r["message"]) for r in lines] == [
        ("WARNING", "siem_operator.reconciler", "inside the handler"), ("INFO", "siem_operator.cli", "outside"),
        ("WARNING", "siem_operator.reconciler", "inside the handler"), ("ERROR", "siem_operator.x", "with a traceback")]
    assert lines[0]["object"] == {"apiVersion": "siem.ocisiem.io/v1alpha1", "kind": "SiemPipeline", "name": "audit",
                                  "namespace": "security", "uid": "u-1"}
    assert "object" not in lines[1]  # the context ends with the handler
    assert lines[2]["object"]["name"] == "audit"  # and is there until it raises
    assert "object" not in lines[3]
    assert "ValueError: traced" in lines[3]["exc_info"]
    assert dt.datetime.fromisoformat(lines[0]["time"]).utcoffset() == dt.timedelta(0)
    assert "never" not in stream.getvalue()  # the reference holds no spec


@pytest.mark.usefixtures("restore_root_logger")
def test_text_lines_are_kopfs_with_the_object_prefix() -> None:
    stream = configured("text")
    handler(body=BODY)
    logging.getLogger("siem_operator.cli").info("outside")
    first, second = stream.getvalue().splitlines()
    assert first.endswith("[WARNING ] [security/audit] inside the handler")
    assert second.endswith("[INFO    ] outside")


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="expected one of json, text"):
        logs.configure("logfmt")
