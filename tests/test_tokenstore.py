"""Token store (0600 file, keyring selection) and token lookup order."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from bconnect.core import tokenstore
from bconnect.core.secrets import NotASecretRef, SecretRefError, resolve_secret_ref
from bconnect.core.tokenstore import (
    FileTokenStore,
    NullTokenStore,
    TokenStoreError,
    default_token_file,
    keyring_type_from_env,
    open_store,
    resolve_token,
)

ADDR = "http://127.0.0.1:9200"


@pytest.fixture(autouse=True)
def hermetic_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in (
        "BCONNECT_TOKEN",
        "BOUNDARY_TOKEN",
        "BCONNECT_KEYRING_TYPE",
        "BOUNDARY_KEYRING_TYPE",
        "XDG_CONFIG_HOME",
    ):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "cfg" / "token"
    monkeypatch.setenv("BCONNECT_TOKEN_FILE", str(path))
    return path


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_file_store_roundtrip_and_mode(hermetic_env: Path) -> None:
    store = FileTokenStore(hermetic_env)
    assert store.get(ADDR) is None
    store.set(ADDR, "at_1_s1a")
    store.set("https://other:9200/", "at_2_s1b")
    assert mode(hermetic_env) == 0o600
    assert mode(hermetic_env.parent) == 0o700
    assert store.get(ADDR + "/") == "at_1_s1a"
    assert store.get("https://OTHER:9200") == "at_2_s1b"
    data = json.loads(hermetic_env.read_text())
    assert data == {"tokens": {ADDR: "at_1_s1a", "https://other:9200": "at_2_s1b"}}
    assert store.delete(ADDR) is True
    assert store.delete(ADDR) is False
    assert store.get(ADDR) is None
    assert store.get("https://other:9200") == "at_2_s1b"


def test_file_store_tightens_existing_file(hermetic_env: Path) -> None:
    hermetic_env.parent.mkdir(parents=True)
    hermetic_env.write_text('{"tokens": {}}')
    os.chmod(hermetic_env, 0o644)
    FileTokenStore(hermetic_env).set(ADDR, "at_1_s1a")
    assert mode(hermetic_env) == 0o600


def test_file_store_rejects_garbage(hermetic_env: Path) -> None:
    hermetic_env.parent.mkdir(parents=True)
    hermetic_env.write_text("not json")
    with pytest.raises(TokenStoreError):
        FileTokenStore(hermetic_env).get(ADDR)


def test_default_token_file_locations(tmp_path: Path) -> None:
    assert default_token_file({"BCONNECT_TOKEN_FILE": "/x/t"}) == Path("/x/t")
    assert default_token_file({"XDG_CONFIG_HOME": "/cfg"}) == Path("/cfg/bconnect/token")
    assert default_token_file({}) == Path("~/.config/bconnect/token").expanduser()


def test_keyring_type_selection(monkeypatch: pytest.MonkeyPatch) -> None:
    assert keyring_type_from_env() == "auto"
    monkeypatch.setenv("BOUNDARY_KEYRING_TYPE", "none")
    assert keyring_type_from_env() == "none"
    monkeypatch.setenv("BCONNECT_KEYRING_TYPE", "file")
    assert keyring_type_from_env() == "file"
    assert keyring_type_from_env("none") == "none"
    with pytest.raises(TokenStoreError):
        keyring_type_from_env("wincred")


def test_open_store(hermetic_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(open_store("none"), NullTokenStore)
    store = open_store("file")
    assert isinstance(store, FileTokenStore) and store.path == hermetic_env
    # auto with BCONNECT_TOKEN_FILE set stays on the file: hermetic for tests.
    assert isinstance(open_store("auto"), FileTokenStore)
    # auto without a usable keyring falls back to the file.
    monkeypatch.delenv("BCONNECT_TOKEN_FILE")
    monkeypatch.setattr(tokenstore, "_usable_keyring", lambda: None)
    assert isinstance(open_store("auto"), FileTokenStore)
    with pytest.raises(TokenStoreError):
        open_store("keyring")


def test_keyring_store_with_fake_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    saved: dict[tuple[str, str], str] = {}

    class FakeKeyring:
        def get_password(self, service: str, user: str) -> str | None:
            return saved.get((service, user))

        def set_password(self, service: str, user: str, value: str) -> None:
            saved[(service, user)] = value

        def delete_password(self, service: str, user: str) -> None:
            del saved[(service, user)]

    monkeypatch.setattr(tokenstore, "_usable_keyring", FakeKeyring)
    monkeypatch.delenv("BCONNECT_TOKEN_FILE")
    store = open_store("auto")
    assert store.kind == "keyring"
    store.set(ADDR, "at_1_s1a")
    assert saved == {("bconnect", ADDR): "at_1_s1a"}
    assert store.get(ADDR) == "at_1_s1a"
    assert store.delete(ADDR) is True and saved == {}


def test_lookup_order(hermetic_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    FileTokenStore(hermetic_env).set(ADDR, "from-store")
    assert resolve_token(None, addr=ADDR, keyring_type="file") == "from-store"
    assert resolve_token(None, addr=ADDR, keyring_type="none") is None
    assert resolve_token(None, addr="http://elsewhere:9200", keyring_type="file") is None

    monkeypatch.setenv("BOUNDARY_TOKEN", "from-boundary-env")
    assert resolve_token(None, addr=ADDR, keyring_type="file") == "from-boundary-env"
    monkeypatch.setenv("BCONNECT_TOKEN", "from-bconnect-env")
    assert resolve_token(None, addr=ADDR, keyring_type="file") == "from-bconnect-env"

    monkeypatch.setenv("MY_TOKEN", "from-flag-env")
    assert resolve_token("env://MY_TOKEN", addr=ADDR) == "from-flag-env"
    token_file = tmp_path / "tok"
    token_file.write_text("from-flag-file\n")
    assert resolve_token(f"file://{token_file}", addr=ADDR) == "from-flag-file"
    with pytest.raises(SecretRefError, match="env:// or file://"):
        resolve_token("at_literal_s1x", addr=ADDR)


def test_secret_refs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SECRET_X", "  s3cret  ")
    assert resolve_secret_ref("env://SECRET_X") == "s3cret"
    secret_file = tmp_path / "pw"
    secret_file.write_text("hunter2\n")
    assert resolve_secret_ref(f"file://{secret_file}") == "hunter2"
    assert resolve_secret_ref("string://env://literal") == "env://literal"
    assert resolve_secret_ref("plain", must=False) == "plain"
    with pytest.raises(NotASecretRef):
        resolve_secret_ref("plain")
    with pytest.raises(SecretRefError, match="NOT_SET_ANYWHERE"):
        resolve_secret_ref("env://NOT_SET_ANYWHERE")
    with pytest.raises(SecretRefError, match="error reading file"):
        resolve_secret_ref(f"file://{tmp_path}/missing")
