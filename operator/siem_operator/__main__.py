"""``python -m siem_operator``: the same as the ``siem-operator`` command."""

from __future__ import annotations

import sys

from siem_operator.cli import main

sys.exit(main())
