"""siemsink: local SIEM receivers for the sandbox (``make demo``) and the tests.

:class:`~siemsink.hec.HecReceiver` is a loopback Splunk HTTP Event Collector, faithful to the protocol
(auth codes, gzip, indexer acknowledgment, per-event errors, scripted failures);
:func:`~siemsink.tls.make_pki` writes a throw-away CA and a localhost server certificate for it.
"""

from siemsink.hec import Failure, HecReceiver, RequestRecord
from siemsink.tls import Pki, make_pki

__all__ = ["Failure", "HecReceiver", "Pki", "RequestRecord", "make_pki"]
