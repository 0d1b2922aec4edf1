"""The export function: the FDK handler over ``siem_pipeline`` (see ``siem_pipeline.dispatch``).

Invoked by the export topic: reads the events stream with a consumer group, redacts, formats and
sends to the SIEM, dead-letters what cannot be delivered, commits only what the SIEM accepted.
A body {"type": "replay"} re-sends the dead-letter stream instead.
"""

import io
from typing import Any

from fdk import response

from siem_pipeline import dispatch


def handler(ctx: Any, data: io.BytesIO | None = None) -> response.Response:
    return dispatch.handle(ctx, data, fixed="export")
