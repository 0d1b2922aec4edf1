"""Which core a function process runs: the one image of the pipeline and its three functions.

**One image, three functions.** The spec has one ``functions.image`` (with optional per-function
overrides) and the operator gives every function ``SIEM_FUNCTION`` (``fanout``, ``fetch`` or ``export``)
in its configuration, so the default build is **one** image holding the ``siem_pipeline`` package and
the dispatcher ``functions/dispatch/func.py``, which runs the core ``SIEM_FUNCTION`` names. One build,
one image to scan and to pin, the three functions always at the same version (fetch writes what export
reads: they must agree on the formats between them).

``functions/fanout``, ``functions/fetch`` and ``functions/export`` are the same handler with the
function fixed: what ``fn deploy`` builds when someone wants three images (e.g. a per-function
override to try a fix on one of them). Such an image refuses to run under a ``SIEM_FUNCTION`` naming
another function, so an override that points ``fetch.image`` at the export image fails loudly at its
first call instead of exporting where it should fetch.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from siem_pipeline import fn

if TYPE_CHECKING:
    from fdk import response

    from siem_pipeline.oci_clients import OciClientFactory

FUNCTION_VAR: Final = "SIEM_FUNCTION"
FUNCTIONS: Final = ("fanout", "fetch", "export")


class WrongFunction(ValueError):
    """The image and the configuration disagree on which function this is, or neither says."""


def _core(name: str) -> fn.Core:
    # imported on use: a fanout process never loads the destinations, an export never the Audit source
    if name == "fanout":
        from siem_pipeline.fanout import core as fanout_core

        return fanout_core
    if name == "fetch":
        from siem_pipeline.fetch import core as fetch_core

        return fetch_core
    from siem_pipeline.export_config import core as export_core

    return export_core


def function_name(environ: Mapping[str, str], fixed: str | None = None) -> str:
    """The function to run: ``fixed`` (a per-function image) or ``SIEM_FUNCTION``; they must agree."""
    configured = (environ.get(FUNCTION_VAR) or "").strip().lower() or None
    if fixed is not None and configured is not None and configured != fixed:
        raise WrongFunction(f"this image runs the {fixed} function, but {FUNCTION_VAR}={configured}: point "
                            f"the {configured} function at an image that runs it (or at the pipeline's one image)")
    name = fixed or configured
    if name is None:
        raise WrongFunction(f"{FUNCTION_VAR} is not set: it names the function to run ({', '.join(FUNCTIONS)})")
    if name not in FUNCTIONS:
        raise WrongFunction(f"{FUNCTION_VAR}={name!r} is not one of {', '.join(FUNCTIONS)}")
    return name


def handle(ctx: Any, data: io.BytesIO | None, *, fixed: str | None = None,
           environ: Mapping[str, str] | None = None) -> response.Response:
    """One FDK call: the core of the function this process is, through :func:`siem_pipeline.fn.handle`
    (so even a wrong ``SIEM_FUNCTION`` gets its structured log line and a failed invocation)."""
    env = os.environ if environ is None else environ
    try:
        name = function_name(env, fixed)
    except WrongFunction as exc:
        problem = exc

        def refuse(_inv: fn.Invocation, _factory: OciClientFactory) -> Mapping[str, Any]:
            raise problem

        return fn.handle(ctx, data, function=fixed or str(env.get(FUNCTION_VAR) or "unknown"), core=refuse,
                         environ=environ)
    return fn.handle(ctx, data, function=name, core=_core(name), environ=environ)
