"""The fetch function: the FDK handler over ``siem_pipeline`` (see ``siem_pipeline.dispatch``).

Invoked by the fetch topic; the body is a fetch request (a work-stream partition and an inclusive
offset range). Pages Audit ListEvents for each work item, puts the events on the events stream,
advances the watermark in the state stream, then signals the export topic.
"""

import io
from typing import Any

from fdk import response

from siem_pipeline import dispatch


def handler(ctx: Any, data: io.BytesIO | None = None) -> response.Response:
    return dispatch.handle(ctx, data, fixed="fetch")
