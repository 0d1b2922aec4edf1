"""Fixtures shared by the suites that run the pipeline against ocisim and a HEC receiver (registered as a pytest
plugin in ``tests/conftest.py``; a module or conftest that defines a fixture of the same name overrides it).

- ``pki`` (per module): a throw-away CA and a server certificate for ``localhost`` (:mod:`siemsink.tls`);
- ``hec`` (per test): a HEC receiver on loopback over TLS with that certificate, accepting :data:`TOKEN`;
- ``factory`` (per test): OCI clients on ocisim signed with the admin's API key, retrying without sleeping,
  breakers off (:func:`tests.functions.collect_support.make_factory`).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ocisim import OcisimServer
from siem_pipeline.oci_clients import OciClientFactory
from tests.functions.collect_support import make_factory
from tests.support.hec_receiver import HecReceiver
from tests.support.tls import Pki, make_pki

#: the HEC token the ``hec`` receiver accepts
TOKEN = "6b1c9f4e-2d3a-4e5f-8a7b-9c0d1e2f3a4b"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def hec(pki: Pki) -> Iterator[HecReceiver]:
    with HecReceiver(token=TOKEN, tls=pki.server_context()) as receiver:
        yield receiver


@pytest.fixture
def factory(ocisim: OcisimServer) -> Iterator[OciClientFactory]:
    with make_factory(ocisim) as built:
        yield built
