"""Password hashing (argon2id) and auth-token minting/hashing.

Auth tokens look like Boundary's: ``at_<10 base62>_s1<base58 secret>``. Only a SHA-256 of
the whole token is stored: the secret has 256 bits of entropy, so a fast hash is enough
to make a stolen database useless for logging in, and keeps per-request checks cheap.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from bconnect.core.base58 import b58encode
from bconnect.ids import new_id

_hasher = PasswordHasher()
# A hash to verify against when the login name is unknown, so timing does not tell.
_DUMMY_HASH = _hasher.hash("bconnect-dummy-password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
    except (VerificationError, InvalidHashError):
        return False


def mint_auth_token() -> tuple[str, str]:
    """Return (token id, full token)."""
    token_id = new_id("at")
    return token_id, f"{token_id}_s1{b58encode(secrets.token_bytes(32))}"


def mint_worker_credential(worker_id: str) -> str:
    """A worker's own credential: ``w_<id>_c1<base58 secret>`` (its id inside, as an
    auth token's)."""
    return f"{worker_id}_c1{b58encode(secrets.token_bytes(32))}"


def worker_id_of(credential: str) -> str | None:
    """The ``w_…`` id inside a worker credential, or None when it is not one."""
    parts = credential.split("_")
    if len(parts) != 3 or parts[0] != "w" or not parts[2].startswith("c1"):
        return None
    return f"w_{parts[1]}"


def mint_activation_token() -> str:
    """A one-time token for controller-led worker registration."""
    return "wat_" + b58encode(secrets.token_bytes(32))


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_id_of(token: str) -> str | None:
    """The ``at_…`` id inside a token, or None when it is not token-shaped."""
    parts = token.split("_")
    if len(parts) < 3 or parts[0] != "at" or not parts[2].startswith("s1"):
        return None
    return f"at_{parts[1]}"


def hmac_secret(key: bytes, value: str) -> str:
    """Boundary shows ``password_hmac`` instead of a stored password."""
    import base64

    digest = hmac.new(key, value.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")
