"""TLS failures from ``requests`` in a few words, for one-line errors and log lines."""

from __future__ import annotations

import re

# "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: … (_ssl.c:1010)", possibly
# with quotes inside (a host name), inside urllib3's "Caused by SSLError(…)" wrapping
_OPENSSL_REASON = re.compile(r"\[SSL(?:: [A-Z_]+)?\] (.+?)\.? ?(?:\(_ssl\.c:\d+\)|'\)|\"\)|$)")


def tls_failure(exc: BaseException) -> str:
    """OpenSSL's reason inside a ``requests.exceptions.SSLError`` (which nests it in
    urllib3's retry error), e.g. "certificate verify failed: unable to get local issuer
    certificate"; "TLS handshake failed" when it names none."""
    found = _OPENSSL_REASON.search(str(exc))
    return found.group(1).strip() if found else "TLS handshake failed"
