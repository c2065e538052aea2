"""Per-session certificates (docs/protocol.md §2).

The controller mints one self-signed Ed25519 certificate per session, shaped like
Boundary's ``internal/session.newCert``: empty subject and issuer, its own CA
(``IsCA``, key usage digital signature + key encipherment + key agreement + cert sign),
extended key usage server + client auth, NotBefore one minute in the past, NotAfter =
session expiration, DNS SANs = the session id then the worker hosts (IP literals go in
IP SANs). Client and worker both present this same certificate, and each trusts only it.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.x509.oid import ExtendedKeyUsageOID

from bconnect.hostport import split_host_port

__all__ = [
    "load_session_key",
    "mint_session_certificate",
    "session_tls_files",
    "split_host",
    "verify_session_certificate",
]

_BACKDATE = timedelta(minutes=1)
_SEED_SIZE = 32
_KEY_SIZE = 64
_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def split_host(address: str) -> str:
    """Return the host part of ``host``, ``host:port``, ``[v6]``, ``[v6]:port`` or a bare
    IPv6 literal; ValueError when malformed."""
    return split_host_port(address, need_port=False, bare_ipv6=True)[0]


def _parse_ip(host: str) -> _IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _aware(value: datetime, name: str) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ValueError(f"{name} must be a timezone-aware datetime")
    return value.astimezone(UTC)


def _raw_private_key(key: Ed25519PrivateKey) -> bytes:
    """The 64-byte Go ``ed25519.PrivateKey`` form: seed followed by public key."""
    seed = key.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return seed + public


def mint_session_certificate(
    session_id: str,
    worker_hosts: Sequence[str],
    expiration: datetime,
    *,
    not_before: datetime | None = None,
) -> tuple[bytes, bytes]:
    """Create a session's certificate and key.

    ``worker_hosts`` may be host names or addresses, with or without ``:port``; ports are
    dropped, IP literals become IP SANs, other names DNS SANs after the session id
    (duplicates and text that is no address skipped). Returns ``(certificate DER,
    64-byte Ed25519 private key)``.
    """
    if not session_id:
        raise ValueError("session_id is required")
    not_after = _aware(expiration, "expiration")
    start = (
        _aware(not_before, "not_before")
        if not_before is not None
        else datetime.now(UTC) - _BACKDATE
    )
    if start >= not_after:
        raise ValueError("expiration must be after not_before")

    dns_names: list[str] = [session_id]
    ips: list[_IPAddress] = []
    for address in worker_hosts:
        try:
            host = split_host(address)
        except ValueError:
            continue  # a worker registered with a malformed address gets no SAN
        ip = _parse_ip(host)
        if ip is None:
            if host not in dns_names:
                dns_names.append(host)
        elif ip not in ips:
            ips.append(ip)
    sans: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
    sans += [x509.IPAddress(ip) for ip in ips]

    key = Ed25519PrivateKey.generate()
    public = key.public_key()
    empty = x509.Name([])
    builder = (
        x509.CertificateBuilder()
        .subject_name(empty)
        .issuer_name(empty)
        .public_key(public)
        .serial_number(secrets.randbelow(2**63 - 1) + 1)
        .not_valid_before(start)
        .not_valid_after(not_after)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        # RFC 5280 §4.2.1.6: with an empty subject the SAN extension must be critical.
        .add_extension(x509.SubjectAlternativeName(sans), critical=True)
    )
    cert = builder.sign(key, None)
    return cert.public_bytes(serialization.Encoding.DER), _raw_private_key(key)


def load_session_key(private_key: bytes) -> Ed25519PrivateKey:
    """Load a session key from its 64-byte (seed + public key) or 32-byte (seed) form."""
    data = bytes(private_key)
    if len(data) not in (_SEED_SIZE, _KEY_SIZE):
        raise ValueError(
            f"session private key is {len(data)} bytes, expected {_KEY_SIZE} (or a "
            f"{_SEED_SIZE}-byte seed)"
        )
    key = Ed25519PrivateKey.from_private_bytes(data[:_SEED_SIZE])
    if len(data) == _KEY_SIZE and _raw_private_key(key) != data:
        raise ValueError("session private key: public half does not match the seed")
    return key


def session_tls_files(cert_der: bytes, private_key: bytes) -> tuple[bytes, bytes]:
    """PEM certificate and unencrypted PKCS#8 PEM key, for ``SSLContext.load_cert_chain``.

    The key PEM is secret: write it only to a 0600 file and remove it afterwards.
    """
    cert = x509.load_der_x509_certificate(bytes(cert_der))
    key = load_session_key(private_key)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def verify_session_certificate(
    cert_der: bytes, session_id: str, *, now: datetime | None = None
) -> None:
    """Check that ``cert_der`` is a usable certificate for ``session_id``.

    It must parse, carry an Ed25519 key, be signed by that same key, name the session id
    in its DNS SANs, allow server or client auth, and be valid at ``now`` (default: the
    current time). Raises ``ValueError`` describing the first problem found.
    """
    try:
        cert = x509.load_der_x509_certificate(bytes(cert_der))
    except ValueError as exc:
        raise ValueError(f"session certificate is not valid DER: {exc}") from None
    public = cert.public_key()
    if not isinstance(public, Ed25519PublicKey):
        raise ValueError("session certificate does not carry an Ed25519 key")
    if cert.issuer != cert.subject:
        raise ValueError("session certificate is not self-signed (issuer differs from subject)")
    try:
        public.verify(cert.signature, cert.tbs_certificate_bytes)
    except InvalidSignature:
        raise ValueError("session certificate is not self-signed (bad signature)") from None

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise ValueError("session certificate has no subject alternative names") from None
    if session_id not in san.get_values_for_type(x509.DNSName):
        raise ValueError(f"session certificate is not issued for {session_id}")

    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        eku = None
    wanted = {
        ExtendedKeyUsageOID.SERVER_AUTH,
        ExtendedKeyUsageOID.CLIENT_AUTH,
        ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,
    }
    if eku is not None and not wanted.intersection(eku):
        raise ValueError("session certificate does not allow TLS server or client auth")

    moment = _aware(now, "now") if now is not None else datetime.now(UTC)
    if moment > cert.not_valid_after_utc:
        raise ValueError(f"session certificate expired at {cert.not_valid_after_utc.isoformat()}")
    if moment < cert.not_valid_before_utc:
        raise ValueError(
            f"session certificate is not valid before {cert.not_valid_before_utc.isoformat()}"
        )
