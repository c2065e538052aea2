"""The controller's relational schema (SQLAlchemy Core), one table per Boundary resource.

Every resource row carries ``scope_id`` (denormalised for child resources such as hosts
or credentials) so permission checks and recursive listing need no joins. Times are
stored as UTC; ``version`` implements optimistic locking.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(TypeDecorator):
    """A timestamp that is always handed back tz-aware in UTC (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect):  # noqa: ANN001
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect):  # noqa: ANN001
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _id(**kw) -> Column:  # noqa: ANN003
    return Column("id", String(32), primary_key=True, **kw)


def _common() -> list[Column]:
    return [
        Column("name", String(128), nullable=True),
        Column("description", Text, nullable=True),
        Column("created_time", UTCDateTime, nullable=False),
        Column("updated_time", UTCDateTime, nullable=False),
        Column("version", Integer, nullable=False, default=1),
    ]


def _scope_fk(nullable: bool = False) -> Column:
    return Column("scope_id", String(32), ForeignKey("scopes.id"), nullable=nullable, index=True)


scopes = Table(
    "scopes",
    metadata,
    _id(),
    Column("type", String(16), nullable=False),
    Column("parent_id", String(32), ForeignKey("scopes.id"), nullable=True, index=True),
    Column("primary_auth_method_id", String(32), nullable=True),
    *_common(),
)

auth_methods = Table(
    "auth_methods",
    metadata,
    _id(),
    _scope_fk(),
    Column("type", String(16), nullable=False),
    Column("min_login_name_length", Integer, nullable=False, default=3),
    Column("min_password_length", Integer, nullable=False, default=8),
    *_common(),
)

accounts = Table(
    "accounts",
    metadata,
    _id(),
    _scope_fk(),
    Column(
        "auth_method_id",
        String(32),
        ForeignKey("auth_methods.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("type", String(16), nullable=False),
    Column("login_name", String(255), nullable=False),
    Column("password_hash", Text, nullable=False),
    *_common(),
    UniqueConstraint("auth_method_id", "login_name", name="uq_accounts_login"),
)

users = Table("users", metadata, _id(), _scope_fk(), *_common())

user_accounts = Table(
    "user_accounts",
    metadata,
    Column("user_id", String(32), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column(
        "account_id",
        String(32),
        ForeignKey("accounts.id", ondelete="CASCADE"),
        primary_key=True,
    ),
)

roles = Table("roles", metadata, _id(), _scope_fk(), *_common())

role_grant_scopes = Table(
    "role_grant_scopes",
    metadata,
    Column("role_id", String(32), ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True),
    Column("grant_scope", String(32), primary_key=True),
)

role_principals = Table(
    "role_principals",
    metadata,
    Column("role_id", String(32), ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True),
    Column("principal_id", String(32), primary_key=True),
)

role_grants = Table(
    "role_grants",
    metadata,
    Column("role_id", String(32), ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("canonical_grant", Text, nullable=False),
    Column("raw_grant", Text, nullable=False),
)

auth_tokens = Table(
    "auth_tokens",
    metadata,
    _id(),
    _scope_fk(),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("user_id", String(32), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("account_id", String(32), ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column(
        "auth_method_id",
        String(32),
        ForeignKey("auth_methods.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("created_time", UTCDateTime, nullable=False),
    Column("updated_time", UTCDateTime, nullable=False),
    Column("approximate_last_used_time", UTCDateTime, nullable=False),
    Column("expiration_time", UTCDateTime, nullable=False),
)

host_catalogs = Table(
    "host_catalogs",
    metadata,
    _id(),
    _scope_fk(),
    Column("type", String(16), nullable=False),
    *_common(),
)

hosts = Table(
    "hosts",
    metadata,
    _id(),
    _scope_fk(),
    Column(
        "host_catalog_id",
        String(32),
        ForeignKey("host_catalogs.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("type", String(16), nullable=False),
    Column("address", String(255), nullable=False),
    *_common(),
)

host_sets = Table(
    "host_sets",
    metadata,
    _id(),
    _scope_fk(),
    Column(
        "host_catalog_id",
        String(32),
        ForeignKey("host_catalogs.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("type", String(16), nullable=False),
    *_common(),
)

host_set_members = Table(
    "host_set_members",
    metadata,
    Column(
        "host_set_id",
        String(32),
        ForeignKey("host_sets.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("host_id", String(32), ForeignKey("hosts.id", ondelete="CASCADE"), primary_key=True),
)

targets = Table(
    "targets",
    metadata,
    _id(),
    _scope_fk(),
    Column("type", String(16), nullable=False),
    Column("address", String(255), nullable=True),
    Column("default_port", Integer, nullable=True),
    Column("default_client_port", Integer, nullable=True),
    Column("session_max_seconds", Integer, nullable=False, default=28800),
    Column("session_connection_limit", Integer, nullable=False, default=-1),
    Column("worker_filter", Text, nullable=True),
    # ssh targets (the worker terminates SSH): the SSH host key the worker presents for
    # this target (OpenSSH private key, sealed; its public half in the clear), the host
    # keys the worker accepts from the target's hosts (known_hosts text; pinned at first
    # use when empty), and session recording
    Column("ssh_host_key", LargeBinary, nullable=True),
    Column("ssh_host_key_public", Text, nullable=True),
    Column("known_hosts", Text, nullable=True),
    Column("enable_session_recording", Integer, nullable=False, default=0),
    Column("record_input", Integer, nullable=False, default=0),
    Column("storage_bucket_id", String(32), nullable=True),
    *_common(),
    UniqueConstraint("scope_id", "name", name="uq_targets_scope_name"),
)

# Boundary's aliases (type "target"): a memorable name for a target, unique across the
# deployment whatever its case (``value_key`` is the value in lower case), living in
# global. Deleting the target leaves the alias without a destination.
aliases = Table(
    "aliases",
    metadata,
    _id(),
    _scope_fk(),
    Column("type", String(16), nullable=False),
    Column("value", String(253), nullable=False),
    Column("value_key", String(253), nullable=False),
    Column(
        "destination_id",
        String(32),
        ForeignKey("targets.id", ondelete="SET NULL"),
        nullable=True,
        index=True,
    ),
    Column("host_id", String(32), nullable=True),
    *_common(),
    UniqueConstraint("value_key", name="uq_aliases_value_key"),
    UniqueConstraint("scope_id", "name", name="uq_aliases_scope_name"),
)

target_host_sources = Table(
    "target_host_sources",
    metadata,
    Column("target_id", String(32), ForeignKey("targets.id", ondelete="CASCADE"), primary_key=True),
    Column(
        "host_set_id",
        String(32),
        ForeignKey("host_sets.id", ondelete="CASCADE"),
        primary_key=True,
    ),
)

credential_stores = Table(
    "credential_stores",
    metadata,
    _id(),
    _scope_fk(),
    Column("type", String(16), nullable=False),
    Column("hmac_key", LargeBinary, nullable=False),
    *_common(),
)

credentials = Table(
    "credentials",
    metadata,
    _id(),
    _scope_fk(),
    Column(
        "credential_store_id",
        String(32),
        ForeignKey("credential_stores.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("type", String(32), nullable=False),
    Column("username", String(255), nullable=True),
    # JSON object with the secret parts (password, private_key, passphrase, object).
    Column("secret", Text, nullable=False),
    *_common(),
)

target_credential_sources = Table(
    "target_credential_sources",
    metadata,
    Column("target_id", String(32), ForeignKey("targets.id", ondelete="CASCADE"), primary_key=True),
    Column(
        "credential_id",
        String(32),
        ForeignKey("credentials.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("purpose", String(32), primary_key=True),
)

workers = Table(
    "workers",
    metadata,
    _id(),
    Column("scope_id", String(32), nullable=False, default="global"),
    Column("type", String(16), nullable=False, default="pki"),
    Column("address", String(255), nullable=True),
    Column("tags", Text, nullable=False, default="{}"),
    # SHA-256 of the worker's own credential (controller-led registration): it alone may
    # act as this worker; NULL for workers of the shared (legacy) key
    Column("key_hash", String(64), nullable=True),
    # SHA-256 of the one-time activation token, until the worker has used it
    Column("activation_token_hash", String(64), nullable=True),
    Column("release_version", String(64), nullable=True),
    Column("last_status_time", UTCDateTime, nullable=True),
    *_common(),
    # a worker's name is its identity when it registers (several controllers at once)
    UniqueConstraint("scope_id", "name", name="uq_workers_scope_name"),
)

sessions = Table(
    "sessions",
    metadata,
    _id(),
    _scope_fk(),
    Column("target_id", String(32), nullable=False, index=True),
    Column("type", String(16), nullable=False),
    Column("user_id", String(32), nullable=False, index=True),
    Column("auth_token_id", String(32), nullable=False),
    Column("host_set_id", String(32), nullable=True),
    Column("host_id", String(32), nullable=True),
    Column("endpoint", String(512), nullable=False),
    Column("expiration_time", UTCDateTime, nullable=False, index=True),
    Column("connection_limit", Integer, nullable=False),
    Column("certificate", LargeBinary, nullable=False),
    # The worker presents the session certificate as its TLS server certificate, so the
    # controller keeps the key to hand it to the worker that serves the session.
    Column("private_key", LargeBinary, nullable=False),
    Column("tofu_token_hash", String(64), nullable=True),
    Column("worker_filter", Text, nullable=True),
    # JSON list of the workers offered in the authorization's worker_info: a worker with
    # its own credential serves only these sessions
    Column("worker_ids", Text, nullable=True),
    Column("worker_id", String(32), nullable=True),
    Column("status", String(16), nullable=False, index=True),
    Column("termination_reason", String(64), nullable=True),
    Column("created_time", UTCDateTime, nullable=False),
    Column("updated_time", UTCDateTime, nullable=False),
    Column("version", Integer, nullable=False, default=1),
    Index("ix_sessions_listing", "created_time", "id"),
    # a scope's sessions newest first, read in index order (the list pages)
    Index("ix_sessions_scope_listing", "scope_id", "created_time", "id"),
)

session_states = Table(
    "session_states",
    metadata,
    Column(
        "session_id",
        String(32),
        ForeignKey("sessions.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("status", String(16), primary_key=True),
    Column("start_time", UTCDateTime, nullable=False),
    Column("end_time", UTCDateTime, nullable=True),
)

session_connections = Table(
    "session_connections",
    metadata,
    _id(),
    Column(
        "session_id",
        String(32),
        ForeignKey("sessions.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("status", String(16), nullable=False),
    Column("client_tcp_address", String(64), nullable=True),
    Column("client_tcp_port", Integer, nullable=True),
    Column("endpoint_tcp_address", String(64), nullable=True),
    Column("endpoint_tcp_port", Integer, nullable=True),
    Column("bytes_up", BigInteger, nullable=False, default=0),
    Column("bytes_down", BigInteger, nullable=False, default=0),
    Column("closed_reason", String(64), nullable=True),
    Column("worker_id", String(32), nullable=True),
    Column("created_time", UTCDateTime, nullable=False),
    Column("updated_time", UTCDateTime, nullable=False),
)

deleted_items = Table(
    "deleted_items",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("collection", String(32), nullable=False),
    Column("scope_id", String(32), nullable=False),
    # the list parent for collections listed under another resource (hosts, accounts, ...)
    Column("parent_id", String(32), nullable=True),
    # the user a session or auth token belonged to (lists of :self items report only theirs)
    Column("owner_id", String(32), nullable=True),
    Column("delete_time", UTCDateTime, nullable=False, index=True),
)

# Where workers write session recordings (Boundary's storage buckets): plugin "local" (a
# directory on the worker, bucket_name is its absolute path) or "s3". ``secrets`` is
# sealed JSON (an S3 access key); ``secrets_hmac`` shows that it changed.
storage_buckets = Table(
    "storage_buckets",
    metadata,
    _id(),
    _scope_fk(),
    Column("plugin_name", String(32), nullable=False),
    Column("bucket_name", String(1024), nullable=False),
    Column("bucket_prefix", String(1024), nullable=True),
    Column("worker_filter", Text, nullable=True),
    Column("attributes", Text, nullable=False, default="{}"),
    Column("secrets", Text, nullable=True),
    Column("secrets_hmac", String(64), nullable=True),
    *_common(),
    UniqueConstraint("scope_id", "name", name="uq_storage_buckets_scope_name"),
)

# A recorded session (its scope is its storage bucket's, as in Boundary) and one row per
# recorded channel: the worker writes each channel's asciicast file to the bucket, the
# controller keeps the index and each file's SHA-256 once the worker has finished it.
session_recordings = Table(
    "session_recordings",
    metadata,
    _id(),
    _scope_fk(),
    Column(
        "storage_bucket_id",
        String(32),
        ForeignKey("storage_buckets.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("session_id", String(32), nullable=False, index=True),
    Column("target_id", String(32), nullable=False),
    Column("target_name", String(128), nullable=True),
    Column("project_id", String(32), nullable=False),
    Column("user_id", String(32), nullable=False),
    Column("user_name", String(128), nullable=True),
    Column("endpoint", String(512), nullable=False),
    Column("state", String(16), nullable=False),
    Column("start_time", UTCDateTime, nullable=False),
    Column("end_time", UTCDateTime, nullable=True),
    Column("created_time", UTCDateTime, nullable=False),
    Column("updated_time", UTCDateTime, nullable=False),
    Index("ix_session_recordings_listing", "created_time", "id"),
)

channel_recordings = Table(
    "channel_recordings",
    metadata,
    _id(),
    Column(
        "session_recording_id",
        String(32),
        ForeignKey("session_recordings.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("connection_id", String(32), nullable=False),
    Column("type", String(16), nullable=False),  # "session" (shell, exec) or "sftp"
    Column("command", Text, nullable=True),
    Column("object_key", Text, nullable=False),
    Column("mime_type", String(64), nullable=False),
    Column("bytes", BigInteger, nullable=False, default=0),
    Column("sha256", String(64), nullable=True),
    # started → available (finished and hashed) | incomplete (the worker stopped writing)
    Column("state", String(16), nullable=False),
    Column("error", Text, nullable=True),
    Column("start_time", UTCDateTime, nullable=False),
    Column("end_time", UTCDateTime, nullable=True),
    Column("created_time", UTCDateTime, nullable=False),
    Column("updated_time", UTCDateTime, nullable=False),
)

# Data keys (controller/kms.py): AES-256-GCM keys, each wrapped with an operator's root
# key (``root_key_id`` names it); they encrypt credentials' secrets and session keys.
kms_keys = Table(
    "kms_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("root_key_id", String(128), nullable=False),
    Column("wrapped_key", LargeBinary, nullable=False),
    Column("created_time", UTCDateTime, nullable=False),
)

# One row per periodic job: the controller that takes the row's lock runs the job and
# sets its next run, so with several controllers each job runs once per interval.
job_runs = Table(
    "job_runs",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("next_run_time", UTCDateTime, nullable=False),
    Column("last_run_time", UTCDateTime, nullable=True),
    Column("last_controller", String(255), nullable=True),
    Column("runs", BigInteger, nullable=False, default=0),
)
