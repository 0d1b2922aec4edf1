"""The pipeline's one functions image: runs the core ``SIEM_FUNCTION`` names (fanout, fetch or export).

See ``siem_pipeline.dispatch`` for why one image, and ``functions/<name>/func.yaml`` for each
function's configuration.
"""

import io
from typing import Any

from fdk import response

from siem_pipeline import dispatch


def handler(ctx: Any, data: io.BytesIO | None = None) -> response.Response:
    return dispatch.handle(ctx, data)
