"""Request signatures: API keys and resource-principal session tokens, checked as OCI checks them.

The SDK and the CLI sign with draft-cavage HTTP Signatures (RSA PKCS#1 v1.5, SHA-256). The
signing string is rebuilt here from the raw, percent-encoded request target, never a decoded one.

Resource principals: ocisim mints an RPST (a JWT signed with its own secret) whose ``jwk`` claim
holds the session public key, as OCI's do. A function's SDK signs with ``keyId="ST$<jwt>"``; the
token's signature, expiry and key are all checked here.
"""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import hashlib
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ocisim import errors
from ocisim.world import Principal, World

_PARAM = re.compile(r'(\w+)="([^"]*)"')
BODY_HEADERS = ("content-length", "content-type", "x-content-sha256")
GENERIC_HEADERS = ("date", "(request-target)", "host")


@dataclass
class KeyPair:
    private_pem: str
    public_pem: str
    fingerprint: str


def generate_key_pair(bits: int = 2048) -> KeyPair:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return KeyPair(private_pem, public_pem, fingerprint_of(public_pem))


def fingerprint_of(public_pem: str) -> str:
    """MD5 of the DER SubjectPublicKeyInfo, as ``aa:bb:…`` (what OCI calls the key fingerprint)."""
    key = serialization.load_pem_public_key(public_pem.encode())
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    digest = hashlib.md5(der, usedforsecurity=False).hexdigest()
    return ":".join(digest[i:i + 2] for i in range(0, 32, 2))


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _jwk_to_key(jwk: Mapping[str, Any]) -> rsa.RSAPublicKey:
    def uint(text: str) -> int:
        return int.from_bytes(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), "big")
    return rsa.RSAPublicNumbers(uint(jwk["e"]), uint(jwk["n"])).public_key()


class Keyring:
    """Public keys ocisim trusts: users' API keys and its own resource-principal tokens."""

    def __init__(self, world: World) -> None:
        self.world = world
        self._secret = secrets.token_bytes(32)
        self._public_keys: dict[str, rsa.RSAPublicKey] = {}

    # -- API keys --------------------------------------------------------------------------------

    def register_api_key(self, user_id: str, public_pem: str) -> str:
        """Trust ``public_pem`` for ``user_id``; returns the keyId the SDK will sign with."""
        fingerprint = fingerprint_of(public_pem)
        key_id = f"{self.world.tenancy_id}/{user_id}/{fingerprint}"
        key = serialization.load_pem_public_key(public_pem.encode())
        if not isinstance(key, rsa.RSAPublicKey):
            raise errors.invalid("Only RSA API keys are supported.")
        self._public_keys[key_id] = key
        return key_id

    def forget(self, key_id: str) -> None:
        self._public_keys.pop(key_id, None)

    # -- resource principals --------------------------------------------------------------------

    def issue_resource_principal(self, *, resource_id: str, compartment_id: str,
                                 resource_type: str = "fnfunc", ttl: float = 3600.0) -> tuple[str, str]:
        """Mint an RPST and its session key; returns ``(token, private_pem)`` for the function's env."""
        pair = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        numbers = pair.public_key().public_numbers()
        now = int(time.time())
        claims = {
            "sub": resource_id, "iss": "authService.oracle.com", "aud": "oci", "iat": now,
            "exp": now + int(ttl), "res_type": resource_type, "res_id": resource_id,
            "res_tenant": self.world.tenancy_id, "res_compartment": compartment_id,
            "ttype": "res", "jwk": {"kty": "RSA", "alg": "RS256", "use": "sig",
                                    "kid": "asw", "n": _b64url_uint(numbers.n), "e": _b64url_uint(numbers.e)},
        }
        token = jwt.encode(claims, self._secret, algorithm="HS256")
        private_pem = pair.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()).decode()
        return token, private_pem

    def _session(self, token: str) -> tuple[rsa.RSAPublicKey, Principal]:
        try:
            claims = jwt.decode(token, self._secret, algorithms=["HS256"], audience="oci")
        except jwt.ExpiredSignatureError as exc:
            raise errors.not_authenticated("The security token has expired.") from exc
        except jwt.PyJWTError as exc:
            raise errors.not_authenticated("The security token is not valid.") from exc
        if claims.get("res_tenant") != self.world.tenancy_id:
            raise errors.not_authenticated("The security token belongs to another tenancy.")
        principal = Principal(kind="resource", tenancy_id=claims["res_tenant"], principal_id=claims["res_id"],
                              name=claims["res_id"], compartment_id=claims["res_compartment"],
                              resource_type=claims.get("res_type"), auth_type="res")
        return _jwk_to_key(claims["jwk"]), principal

    # -- verification ------------------------------------------------------------------------------

    def verify(self, method: str, raw_target: str, headers: Mapping[str, str], body: bytes,
               *, require_body_headers: bool) -> Principal:
        """Check the request's signature; returns who signed it or raises 401."""
        auth = headers.get("authorization")
        if not auth or not auth.startswith("Signature "):
            raise errors.not_authenticated()
        params = dict(_PARAM.findall(auth))
        key_id = params.get("keyId")
        signature = params.get("signature")
        if not key_id or not signature or params.get("algorithm", "rsa-sha256") != "rsa-sha256":
            raise errors.not_authenticated()
        names = params.get("headers", "date").lower().split()
        for required in GENERIC_HEADERS:
            if required not in names and not (required == "date" and "x-date" in names):
                raise errors.not_authenticated(f"The '{required}' header must be signed.")
        method = method.upper()
        if require_body_headers and method in ("POST", "PUT", "PATCH"):
            for required in BODY_HEADERS:
                if required not in names:
                    raise errors.not_authenticated(f"The '{required}' header must be signed.")

        if key_id.startswith("ST$"):
            public_key, principal = self._session(key_id[3:])
        else:
            key = self._public_keys.get(key_id)
            if key is None:
                raise errors.not_authenticated()
            public_key = key
            principal = self._user_principal(key_id)

        lines = []
        for name in names:
            if name == "(request-target)":
                lines.append(f"(request-target): {method.lower()} {raw_target}")
                continue
            value = headers.get(name)
            if value is None:
                raise errors.not_authenticated(f"Signed header '{name}' is missing.")
            lines.append(f"{name}: {value}")
        try:
            public_key.verify(base64.b64decode(signature), "\n".join(lines).encode(),
                              padding.PKCS1v15(), hashes.SHA256())
        except (InvalidSignature, ValueError) as exc:
            raise errors.not_authenticated() from exc

        self._check_date(headers.get("x-date") or headers.get("date"))
        if "x-content-sha256" in names:
            digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
            if headers.get("x-content-sha256") != digest:
                raise errors.not_authenticated("The body does not match x-content-sha256.")
        if "content-length" in names:
            try:
                declared = int(headers.get("content-length", ""))
            except ValueError as exc:
                raise errors.invalid("content-length is not a number.") from exc
            if declared != len(body):
                raise errors.invalid("content-length does not match the body.")
        return principal

    def _user_principal(self, key_id: str) -> Principal:
        tenancy_id, user_id, _ = key_id.split("/", 2)
        user = self.world.users.get(user_id)
        if user is None or user.lifecycle_state != "ACTIVE":
            raise errors.not_authenticated()
        return Principal(kind="user", tenancy_id=tenancy_id, principal_id=user_id, name=user.name)

    def _check_date(self, value: str | None) -> None:
        if not value:
            raise errors.not_authenticated("The date header is missing.")
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError) as exc:
            raise errors.not_authenticated("The date header is not an RFC 1123 date.") from exc
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        skew = abs(time.time() - when.timestamp())
        if skew > self.world.settings.max_clock_skew:
            raise errors.not_authenticated(f"The request date is {skew:.0f} s off; the limit is "
                                           f"{self.world.settings.max_clock_skew:.0f} s.")
