"""The fanout function: the FDK handler over ``siem_pipeline`` (see ``siem_pipeline.dispatch``).

Started by the schedule (the body is ignored): lists regions and compartments (root included),
computes each pair's next closed window from its watermark, writes work items to the work stream
and publishes their offset ranges on the fetch topic.
"""

import io
from typing import Any

from fdk import response

from siem_pipeline import dispatch


def handler(ctx: Any, data: io.BytesIO | None = None) -> response.Response:
    return dispatch.handle(ctx, data, fixed="fanout")
