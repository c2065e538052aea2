"""Session certificates: shape (as Boundary's newCert), keys, PEM export, verification."""

from __future__ import annotations

import ipaddress
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID

from bconnect.core.certs import (
    load_session_key,
    mint_session_certificate,
    session_tls_files,
    split_host,
    verify_session_certificate,
)

SESSION = "s_1234567890"
HOSTS = [
    "worker.example.com:9202",
    "127.0.0.1:9202",
    "localhost",
    "worker.example.com",
    "[::1]:9202",
]


@pytest.fixture(scope="module")
def expiration() -> datetime:
    return datetime.now(UTC).replace(microsecond=654321) + timedelta(hours=8)


@pytest.fixture(scope="module")
def minted(expiration: datetime) -> tuple[bytes, bytes]:
    return mint_session_certificate(SESSION, HOSTS, expiration)


@pytest.fixture(scope="module")
def cert(minted: tuple[bytes, bytes]) -> x509.Certificate:
    return x509.load_der_x509_certificate(minted[0])


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def test_self_signed_ed25519(cert: x509.Certificate) -> None:
    public = cert.public_key()
    assert isinstance(public, Ed25519PublicKey)
    assert cert.issuer == cert.subject
    assert len(cert.subject) == 0  # Boundary's newCert leaves subject and issuer empty
    assert cert.signature_algorithm_oid == x509.oid.SignatureAlgorithmOID.ED25519
    public.verify(cert.signature, cert.tbs_certificate_bytes)
    cert.verify_directly_issued_by(cert)
    assert cert.version == x509.Version.v3
    assert 0 < cert.serial_number < 2**63


def test_is_ca(cert: x509.Certificate) -> None:
    ext = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert ext.critical
    assert ext.value.ca is True
    assert ext.value.path_length is None


def test_key_usage(cert: x509.Certificate) -> None:
    ext = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ext.critical
    usage = ext.value
    assert usage.digital_signature
    assert usage.key_encipherment
    assert usage.key_agreement
    assert usage.key_cert_sign
    assert not usage.crl_sign
    assert not usage.content_commitment
    assert not usage.data_encipherment


def test_extended_key_usage(cert: x509.Certificate) -> None:
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]


def test_subject_alternative_names(cert: x509.Certificate) -> None:
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert ext.critical  # required with an empty subject (RFC 5280 §4.2.1.6)
    san = ext.value
    assert san.get_values_for_type(x509.DNSName) == [SESSION, "worker.example.com", "localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]


def test_subject_key_identifier(cert: x509.Certificate) -> None:
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(cert.public_key())


def test_validity(cert: x509.Certificate, expiration: datetime) -> None:
    assert cert.not_valid_after_utc == expiration.replace(microsecond=0)
    backdate = datetime.now(UTC) - cert.not_valid_before_utc
    assert timedelta(seconds=50) < backdate < timedelta(minutes=5)


def test_explicit_not_before() -> None:
    start = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    end = start + timedelta(hours=1)
    der, _ = mint_session_certificate(SESSION, [], end, not_before=start)
    cert = x509.load_der_x509_certificate(der)
    assert cert.not_valid_before_utc == start
    assert cert.not_valid_after_utc == end
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [SESSION]


def test_private_key_matches(minted: tuple[bytes, bytes], cert: x509.Certificate) -> None:
    _, key_bytes = minted
    assert len(key_bytes) == 64
    public = cert.public_key()
    assert isinstance(public, Ed25519PublicKey)
    assert key_bytes[32:] == _raw_public(public)
    key = load_session_key(key_bytes)
    assert _raw_public(key.public_key()) == _raw_public(public)
    public.verify(key.sign(b"proof"), b"proof")


def test_each_mint_uses_a_fresh_key(expiration: datetime) -> None:
    first = mint_session_certificate(SESSION, [], expiration)
    second = mint_session_certificate(SESSION, [], expiration)
    assert first[1] != second[1]
    assert first[0] != second[0]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"session_id": ""}, "session_id"),
        ({"expiration": datetime(2030, 1, 1)}, "timezone-aware"),
        ({"expiration": datetime(2000, 1, 1, tzinfo=UTC)}, "after not_before"),
    ],
)
def test_mint_rejects_bad_arguments(kwargs: dict, match: str) -> None:
    args = {"session_id": SESSION, "worker_hosts": [], "expiration": datetime.now(UTC)}
    args["expiration"] += timedelta(hours=1)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        mint_session_certificate(**args)


@pytest.mark.parametrize(
    ("address", "host"),
    [
        ("worker:9202", "worker"),
        ("worker", "worker"),
        ("10.0.0.1:9202", "10.0.0.1"),
        ("[::1]:9202", "::1"),
        ("[fe80::1]", "fe80::1"),
        ("::1", "::1"),
    ],
)
def test_split_host(address: str, host: str) -> None:
    assert split_host(address) == host


# --- load_session_key / session_tls_files -----------------------------------------------


def test_load_session_key_from_seed() -> None:
    key = Ed25519PrivateKey.generate()
    seed = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    loaded = load_session_key(seed)
    assert _raw_public(loaded.public_key()) == _raw_public(key.public_key())
    assert _raw_public(load_session_key(seed + _raw_public(key.public_key())).public_key()) == (
        _raw_public(key.public_key())
    )


@pytest.mark.parametrize("size", [0, 31, 33, 63, 65])
def test_load_session_key_rejects_wrong_size(size: int) -> None:
    with pytest.raises(ValueError, match="expected 64"):
        load_session_key(bytes(size))


def test_load_session_key_rejects_mismatched_public_half(minted: tuple[bytes, bytes]) -> None:
    key = minted[1]
    with pytest.raises(ValueError, match="does not match"):
        load_session_key(key[:32] + bytes(32))


def test_session_tls_files(minted: tuple[bytes, bytes], tmp_path: Path) -> None:
    cert_pem, key_pem = session_tls_files(*minted)
    assert cert_pem.startswith(b"-----BEGIN CERTIFICATE-----")
    assert key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert (
        x509.load_pem_x509_certificate(cert_pem).public_bytes(serialization.Encoding.DER)
        == (minted[0])
    )
    key = serialization.load_pem_private_key(key_pem, password=None)
    assert isinstance(key, Ed25519PrivateKey)
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert_pem)
    key_file.write_bytes(key_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)  # raises if key and certificate differ


# --- verify_session_certificate ---------------------------------------------------------


def test_verify_accepts_minted(minted: tuple[bytes, bytes]) -> None:
    verify_session_certificate(minted[0], SESSION)


def test_verify_rejects_other_session(minted: tuple[bytes, bytes]) -> None:
    with pytest.raises(ValueError, match="not issued for s_0987654321"):
        verify_session_certificate(minted[0], "s_0987654321")


def test_verify_rejects_expired(minted: tuple[bytes, bytes], expiration: datetime) -> None:
    with pytest.raises(ValueError, match="expired"):
        verify_session_certificate(minted[0], SESSION, now=expiration + timedelta(seconds=2))
    with pytest.raises(ValueError, match="not valid before"):
        verify_session_certificate(minted[0], SESSION, now=datetime(2001, 1, 1, tzinfo=UTC))


def test_verify_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="DER"):
        verify_session_certificate(b"not a certificate", SESSION)


def _builder(public: CertificatePublicKeyTypes, expiration: datetime) -> x509.CertificateBuilder:
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, SESSION)])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(1)
        .not_valid_before(datetime.now(UTC) - timedelta(minutes=1))
        .not_valid_after(expiration)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(SESSION)]), critical=False)
    )


def test_verify_rejects_foreign_signature(expiration: datetime) -> None:
    subject_key, other_key = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    cert = _builder(subject_key.public_key(), expiration).sign(other_key, None)
    with pytest.raises(ValueError, match="not self-signed"):
        verify_session_certificate(cert.public_bytes(serialization.Encoding.DER), SESSION)


def test_verify_rejects_non_ed25519(expiration: datetime) -> None:
    from cryptography.hazmat.primitives import hashes

    key = ec.generate_private_key(ec.SECP256R1())
    cert = _builder(key.public_key(), expiration).sign(key, hashes.SHA256())
    with pytest.raises(ValueError, match="Ed25519"):
        verify_session_certificate(cert.public_bytes(serialization.Encoding.DER), SESSION)


def test_verify_rejects_wrong_eku(expiration: datetime) -> None:
    key = Ed25519PrivateKey.generate()
    builder = _builder(key.public_key(), expiration).add_extension(
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False
    )
    der = builder.sign(key, None).public_bytes(serialization.Encoding.DER)
    with pytest.raises(ValueError, match="server or client auth"):
        verify_session_certificate(der, SESSION)


# --- the certificate works for mutual TLS 1.3 (in memory, no sockets) -------------------


@pytest.mark.parametrize("strict", [False, True])
def test_mutual_tls_in_memory(minted: tuple[bytes, bytes], tmp_path: Path, strict: bool) -> None:
    cert_pem, key_pem = session_tls_files(*minted)
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert_pem)
    key_file.write_bytes(key_pem)

    def context(purpose: int) -> ssl.SSLContext:
        ctx = ssl.SSLContext(purpose)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.load_cert_chain(cert_file, key_file)
        ctx.load_verify_locations(cadata=minted[0])
        ctx.verify_mode = ssl.CERT_REQUIRED
        if strict:
            ctx.verify_flags |= ssl.VERIFY_X509_STRICT
        return ctx

    client_ctx = context(ssl.PROTOCOL_TLS_CLIENT)
    server_ctx = context(ssl.PROTOCOL_TLS_SERVER)
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname=SESSION)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(10):
        for name, conn in (("client", client), ("server", server)):
            if not done[name]:
                try:
                    conn.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            break
    assert all(done.values())
    assert client.version() == "TLSv1.3"
    assert client.getpeercert(binary_form=True) == minted[0]
    assert server.getpeercert(binary_form=True) == minted[0]
