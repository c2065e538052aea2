"""TLS failures from ``requests`` in a few words, for one-line errors and log lines."""

from __future__ import annotations

import re

_OPENSSL_REASON = re.compile(r"\[SSL(?:: [A-Z_]+)?\] ([^(')\"]+)")


def tls_failure(exc: BaseException) -> str:
    """OpenSSL's reason inside a ``requests.exceptions.SSLError`` (which nests it in
    urllib3's retry error), e.g. "certificate verify failed: unable to get local issuer
    certificate"; "TLS handshake failed" when it names none."""
    found = _OPENSSL_REASON.search(str(exc))
    return found.group(1).strip() if found else "TLS handshake failed"
