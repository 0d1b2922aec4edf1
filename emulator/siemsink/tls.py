"""A throw-away PKI for loopback TLS receivers: a CA, and a server certificate for localhost/127.0.0.1.

:class:`CertificateAuthority` issues further server certificates from a CA of its own, valid or not (expired, for
another host): what the tests of hostile receivers need a client to refuse."""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import rsa as rsa_keys
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclasses.dataclass(frozen=True)
class Pki:
    ca: Path
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context


#: the names of a loopback receiver: what its certificate must cover to be accepted
LOOPBACK: tuple[str, ...] = ("localhost", "127.0.0.1")

_Key = ec.EllipticCurvePrivateKey | rsa_keys.RSAPrivateKey


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _host(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _write_key(key: _Key, path: Path) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))


class CertificateAuthority:
    """A self-signed CA held in memory (its key is never written), valid from ``not_before`` (default: five minutes
    ago) for two days; it issues server certificates with keys of its own kind (EC P-256, or RSA 2048)."""

    def __init__(self, name: str = "test CA", *, rsa: bool = False, not_before: dt.datetime | None = None) -> None:
        self.rsa = rsa
        self.now = dt.datetime.now(dt.UTC)
        self.key = self.new_key()
        self.cert = (x509.CertificateBuilder().subject_name(_name(name)).issuer_name(_name(name))
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(not_before or self.now - dt.timedelta(minutes=5))
                     .not_valid_after(self.now + dt.timedelta(days=2))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                     .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                                  content_commitment=False, key_encipherment=False,
                                                  data_encipherment=False, key_agreement=False, encipher_only=False,
                                                  decipher_only=False), critical=True)
                     .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
                     .sign(self.key, hashes.SHA256()))

    def new_key(self) -> _Key:
        if self.rsa:
            return rsa_keys.generate_private_key(public_exponent=65537, key_size=2048)
        return ec.generate_private_key(ec.SECP256R1())

    def write(self, path: Path) -> Path:
        """The CA certificate (what a client trusts), as PEM."""
        path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        return path

    def issue(self, directory: Path, name: str, *, hosts: tuple[str, ...] = LOOPBACK, common_name: str | None = None,
              not_before: dt.datetime | None = None, not_after: dt.datetime | None = None) -> tuple[Path, Path]:
        """Write ``<name>.pem`` and ``<name>.key``: a server certificate for ``hosts`` (DNS names or IP addresses),
        by default valid from five minutes ago for a day; answers their paths (the chain a server loads)."""
        key = self.new_key()
        cert = (x509.CertificateBuilder().subject_name(_name(common_name or name)).issuer_name(self.cert.subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(not_before or self.now - dt.timedelta(minutes=5))
                .not_valid_after(not_after or self.now + dt.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName([_host(h) for h in hosts]), critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                               critical=False)
                .sign(self.key, hashes.SHA256()))
        directory.mkdir(parents=True, exist_ok=True)
        cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key, key_path)
        return cert_path, key_path


def make_pki(directory: Path, *, ca_name: str = "test CA", rsa: bool = False) -> Pki:
    """Write ``ca.pem``, ``server.pem`` and ``server.key`` into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = CertificateAuthority(ca_name, rsa=rsa)
    cert, key = ca.issue(directory, "server", common_name="localhost")
    return Pki(ca.write(directory / "ca.pem"), cert, key)
