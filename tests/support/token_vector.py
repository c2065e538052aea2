"""A hand-computed authorization-token vector: the protobuf bytes field by field, their
base58 text and the decoded data (test_token.py checks the codec against it; the protocol
fuzzing mutates it)."""

from __future__ import annotations

from datetime import UTC, datetime

from bconnect.core.token import AuthzData, ScopeInfo

# SessionAuthorizationData, serialized field by field (tag bytes are varint(field << 3 | wt)).
TOKEN_BYTES = b"".join(
    [
        bytes.fromhex("52 0c") + b"s_1234567890",  # 10 session_id
        bytes.fromhex("a2 01 0f") + b"ttcp_1234567890",  # 20 target_id
        bytes.fromhex("f2 01 2b")  # 30 scope (ScopeInfo, 43 bytes)
        + bytes.fromhex("0a 0c")  # 1 id
        + b"p_1234567890"
        + bytes.fromhex("12 07")  # 2 type
        + b"project"
        + bytes.fromhex("1a 04")  # 3 name
        + b"proj"
        + bytes.fromhex("2a 0c")  # 5 parent_scope_id
        + b"o_1234567890",
        # 40 created_time: Timestamp{seconds=1700000000 (1), nanos=123456000 (2)}
        bytes.fromhex("c2 02 0b 08 80 e2 cf aa 06 10 80 94 ef 3a"),
        bytes.fromhex("82 05 03") + b"tcp",  # 80 type
        bytes.fromhex("d0 05 ff ff ff ff ff ff ff ff ff 01"),  # 90 connection_limit -1
        bytes.fromhex("b0 06 16"),  # 102 endpoint_port 22
        bytes.fromhex("ca 06 06 08 80 c3 d1 aa 06"),  # 105 expiration{seconds=1700028800}
        bytes.fromhex("c2 07 04") + b"CERT",  # 120 certificate
        bytes.fromhex("92 08 40") + bytes(range(64)),  # 130 private_key
        bytes.fromhex("e2 08 0e") + b"hst_1234567890",  # 140 host_id
        bytes.fromhex("ea 08 12") + b"tcp://127.0.0.1:22",  # 141 endpoint
        bytes.fromhex("b2 09 10 52 0e") + b"127.0.0.1:9202",  # 150 worker_info{address=10}
        bytes.fromhex("80 0a ae 11"),  # 160 default_client_port 2222
    ]
)
TOKEN_TEXT = (
    "HjonUAofRescGrmqEnYQuqT6YQF4kCLSYtWF2NwfoTqvz3VtqAvzpRAiJ9bhXjuR8rYiLqbftN6MYM1jB5Kk8Bn8"
    "BzUhu1bGDEJiCWeksPNMk7jYXPXrGCaAaRK3sNhaJzvZmJx42ZBLkJFqY6aBLoaiSiNQGemDvbEcaLpKhKQwgho3C"
    "KbrJY3CRcsLodCqm6Tjfw8BRU7TSNjn2uVB5CtqvS29z3NsFPKhqkk972ceJaTyaUWKafWEQ3BRQsiKjUH9s6mrbR"
    "rxFihRSSgJQCphoRsoYLfmZjmbEgqTEDLkzvx9RUJXSgzzKU5wAvNDA7wT6sYqswZhBXxQ1keR8GsizEs4JFA"
)
TOKEN_DATA = AuthzData(
    session_id="s_1234567890",
    target_id="ttcp_1234567890",
    scope=ScopeInfo(id="p_1234567890", type="project", name="proj", parent_scope_id="o_1234567890"),
    created_time=datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=UTC),
    type="tcp",
    connection_limit=-1,
    endpoint_port=22,
    expiration=datetime(2023, 11, 15, 6, 13, 20, tzinfo=UTC),
    certificate=b"CERT",
    private_key=bytes(range(64)),
    host_id="hst_1234567890",
    endpoint="tcp://127.0.0.1:22",
    worker_addresses=("127.0.0.1:9202",),
    default_client_port=2222,
)
