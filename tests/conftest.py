from __future__ import annotations

pytest_plugins = ["ocisim.testing", "kubesim.testing", "tests.support.fixtures"]
