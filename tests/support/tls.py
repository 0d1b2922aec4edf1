"""The throw-away PKI of the loopback TLS receivers, shipped as :mod:`siemsink.tls` (the sandbox uses it too)."""

from siemsink.tls import Pki, make_pki

__all__ = ["Pki", "make_pki"]
