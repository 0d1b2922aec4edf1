"""The loopback Splunk HEC receiver, shipped as :mod:`siemsink.hec` (the sandbox uses it too)."""

from siemsink.hec import EVENT_PATHS, STATUS, TEXTS, Failure, HecReceiver, RequestRecord

__all__ = ["EVENT_PATHS", "STATUS", "TEXTS", "Failure", "HecReceiver", "RequestRecord"]
