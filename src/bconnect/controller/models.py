"""Request and response models: they validate input and make the OpenAPI document.

Field names and shapes follow Boundary's API (protobuf-JSON style: snake_case, unset
fields omitted, int64 counters as strings). Responses are rendered with
``response_model_exclude_none`` so unset fields are left out, as Boundary does.
"""

from __future__ import annotations

from types import GenericAlias
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator

# RFC 3339 in UTC with "Z", as protobuf-JSON writes timestamps (0, 3 or 6 fraction digits).
Timestamp = Annotated[str, Field(json_schema_extra={"format": "date-time"})]


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_nul(v) for v in value)
    return False


class Strict(BaseModel):
    """A request body: unknown fields and NUL characters (which PostgreSQL cannot store
    in text, so they would fail there and be kept on SQLite) are refused with a 400."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        if _has_nul(value):
            raise ValueError("must not contain NUL characters")
        return value


class Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------- shared pieces


class ScopeInfo(Out):
    id: str
    type: str
    name: str | None = None
    description: str | None = None
    parent_scope_id: str | None = None


class Resource(Out):
    id: str
    scope: ScopeInfo
    name: str | None = None
    description: str | None = None
    created_time: Timestamp
    updated_time: Timestamp
    version: int
    type: str | None = None
    authorized_actions: list[str] = Field(default_factory=list)


class ListResponse(Out):
    items: list[Any] = Field(default_factory=list)
    response_type: Literal["complete", "delta"]
    list_token: str
    sort_by: str
    sort_dir: str
    removed_ids: list[str] = Field(default_factory=list)
    est_item_count: int


class VersionOnly(Strict):
    version: int = Field(ge=1)


Name = Annotated[str | None, Field(max_length=128)]
Description = Annotated[str | None, Field(max_length=1024)]


# ---------------------------------------------------------------- scopes


class ScopeItem(Resource):
    scope_id: str
    primary_auth_method_id: str | None = None
    authorized_collection_actions: dict[str, list[str]] | None = None


class ScopeCreate(Strict):
    scope_id: str
    name: Name = None
    description: Description = None


class ScopeUpdate(Strict):
    version: int = Field(ge=1)
    name: Name = None
    description: Description = None
    primary_auth_method_id: str | None = None


# ---------------------------------------------------------------- auth methods and accounts


class PasswordAuthMethodAttributes(Strict):
    min_login_name_length: int | None = Field(default=None, ge=1, le=128)
    min_password_length: int | None = Field(default=None, ge=1, le=128)


class AuthMethodItem(Resource):
    scope_id: str
    is_primary: bool | None = None
    attributes: dict[str, Any] | None = None
    authorized_collection_actions: dict[str, list[str]] | None = None


class AuthMethodCreate(Strict):
    scope_id: str
    type: Literal["password"] = "password"
    name: Name = None
    description: Description = None
    attributes: PasswordAuthMethodAttributes | None = None


class AuthMethodUpdate(Strict):
    version: int = Field(ge=1)
    name: Name = None
    description: Description = None
    attributes: PasswordAuthMethodAttributes | None = None


class LoginAttributes(Strict):
    login_name: str = Field(min_length=1, max_length=255)
    password: str = Field(min_length=1, max_length=1024)


class AuthenticateRequest(Strict):
    command: Literal["login"] = "login"
    type: str | None = None
    token_type: str | None = None
    attributes: LoginAttributes


class AuthTokenItem(Out):
    id: str
    scope_id: str
    scope: ScopeInfo
    token: str | None = None
    user_id: str
    auth_method_id: str
    account_id: str
    created_time: Timestamp
    updated_time: Timestamp
    approximate_last_used_time: Timestamp
    expiration_time: Timestamp
    authorized_actions: list[str] = Field(default_factory=list)


class AuthenticateResponse(Out):
    command: str
    attributes: AuthTokenItem


class AccountAttributes(Strict):
    login_name: str = Field(min_length=1, max_length=255)
    password: str | None = Field(default=None, max_length=1024)


class AccountItem(Resource):
    auth_method_id: str
    attributes: dict[str, Any]
    managed_group_ids: list[str] | None = None


class AccountCreate(Strict):
    auth_method_id: str
    type: Literal["password"] = "password"
    name: Name = None
    description: Description = None
    attributes: AccountAttributes


class AccountUpdateAttributes(Strict):
    login_name: str | None = Field(default=None, min_length=1, max_length=255)


class AccountUpdate(Strict):
    version: int = Field(ge=1)
    name: Name = None
    description: Description = None
    attributes: AccountUpdateAttributes | None = None


class SetPassword(Strict):
    version: int = Field(ge=1)
    password: str = Field(min_length=1, max_length=1024)


class ChangePassword(Strict):
    version: int = Field(ge=1)
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=1, max_length=1024)


# ---------------------------------------------------------------- users and roles


class UserItem(Resource):
    scope_id: str
    account_ids: list[str] | None = None
    accounts: list[dict[str, str]] | None = None
    login_name: str | None = None
    primary_account_id: str | None = None


class UserCreate(Strict):
    scope_id: str
    name: Name = None
    description: Description = None


class UserUpdate(Strict):
    version: int = Field(ge=1)
    name: Name = None
    description: Description = None


class AccountIds(Strict):
    version: int = Field(ge=1)
    account_ids: list[str] = Field(default_factory=list)


class PrincipalInfo(Out):
    id: str
    type: str
    scope_id: str


class GrantInfo(Out):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    raw: str
    canonical: str
    json_: dict[str, Any] = Field(alias="json")


class RoleItem(Resource):
    scope_id: str
    grant_scope_ids: list[str] | None = None
    principal_ids: list[str] | None = None
    principals: list[PrincipalInfo] | None = None
    grant_strings: list[str] | None = None
    grants: list[GrantInfo] | None = None


class RoleCreate(Strict):
    scope_id: str
    name: Name = None
    description: Description = None
    grant_scope_ids: list[str] | None = None


class RoleUpdate(Strict):
    version: int = Field(ge=1)
    name: Name = None
    description: Description = None


class PrincipalIds(Strict):
    version: int = Field(ge=1)
    principal_ids: list[str] = Field(default_factory=list)


class GrantStrings(Strict):
    version: int = Field(ge=1)
    grant_strings: list[str] = Field(default_factory=list)


class GrantScopeIds(Strict):
    version: int = Field(ge=1)
    grant_scope_ids: list[str] = Field(default_factory=list)


# ---------------------------------------------------------------- hosts


class HostCatalogItem(Resource):
    scope_id: str
    plugin_id: str | None = None
    authorized_collection_actions: dict[str, list[str]] | None = None


class HostCatalogCreate(Strict):
    scope_id: str
    type: Literal["static"] = "static"
    name: Name = None
    description: Description = None


class HostCatalogUpdate(Strict):
    version: int = Field(ge=1)
    name: Name = None
    description: Description = None


class HostAttributes(Strict):
    address: str = Field(min_length=3, max_length=255)


class HostItem(Resource):
    host_catalog_id: str
    host_set_ids: list[str] | None = None
    attributes: dict[str, Any]


class HostCreate(Strict):
    host_catalog_id: str
    type: Literal["static"] = "static"
    name: Name = None
    description: Description = None
    attributes: HostAttributes


class HostUpdate(Strict):
    version: int = Field(ge=1)
    name: Name = None
    description: Description = None
    attributes: HostAttributes | None = None


class HostSetItem(Resource):
    host_catalog_id: str
    host_ids: list[str] | None = None


class HostSetCreate(Strict):
    host_catalog_id: str
    type: Literal["static"] = "static"
    name: Name = None
    description: Description = None


class HostSetUpdate(Strict):
    version: int = Field(ge=1)
    name: Name = None
    description: Description = None


class HostIds(Strict):
    version: int = Field(ge=1)
    host_ids: list[str] = Field(default_factory=list)


# ---------------------------------------------------------------- targets


class TcpAttributes(Strict):
    default_port: int | None = Field(default=None, ge=1, le=65535)
    default_client_port: int | None = Field(default=None, ge=1, le=65535)


class SshAttributes(TcpAttributes):
    """An ssh target's attributes: Boundary's (recording) and bconnect's ``known_hosts``
    (the host keys the worker accepts) and ``record_input`` (keystrokes in recordings)."""

    enable_session_recording: bool | None = None
    storage_bucket_id: str | None = Field(default=None, max_length=32)
    known_hosts: str | None = Field(default=None, max_length=65536)
    record_input: bool | None = None


class HostSourceInfo(Out):
    id: str
    host_catalog_id: str


class CredentialSourceInfo(Out):
    id: str
    credential_store_id: str
    name: str | None = None
    description: str | None = None
    type: str
    credential_type: str | None = None


class TargetItem(Resource):
    scope_id: str
    address: str | None = None
    host_source_ids: list[str] | None = None
    host_sources: list[HostSourceInfo] | None = None
    session_max_seconds: int
    session_connection_limit: int
    worker_filter: str | None = None
    egress_worker_filter: str | None = None
    brokered_credential_source_ids: list[str] | None = None
    brokered_credential_sources: list[CredentialSourceInfo] | None = None
    injected_application_credential_source_ids: list[str] | None = None
    injected_application_credential_sources: list[CredentialSourceInfo] | None = None
    attributes: dict[str, Any] | None = None


class TargetCreate(Strict):
    scope_id: str
    type: Literal["tcp", "ssh"] = "tcp"
    name: str = Field(min_length=1, max_length=128)
    description: Description = None
    address: str | None = Field(default=None, max_length=255)
    session_max_seconds: int | None = Field(default=None, ge=1, le=2**31 - 1)
    session_connection_limit: int | None = Field(default=None, ge=-1, le=2**31 - 1)
    worker_filter: str | None = None
    egress_worker_filter: str | None = None
    attributes: SshAttributes | None = None
    # bconnect: credential sources given at creation (one transaction)
    brokered_credential_source_ids: list[str] | None = None
    injected_application_credential_source_ids: list[str] | None = None


class TargetUpdate(Strict):
    version: int = Field(ge=1)
    name: str | None = Field(default=None, min_length=1, max_length=128)
    description: Description = None
    address: str | None = Field(default=None, max_length=255)
    session_max_seconds: int | None = Field(default=None, ge=1, le=2**31 - 1)
    session_connection_limit: int | None = Field(default=None, ge=-1, le=2**31 - 1)
    worker_filter: str | None = None
    egress_worker_filter: str | None = None
    attributes: SshAttributes | None = None


class HostSourceIds(Strict):
    version: int = Field(ge=1)
    host_source_ids: list[str] = Field(default_factory=list)


class CredentialSourceIds(Strict):
    version: int = Field(ge=1)
    brokered_credential_source_ids: list[str] = Field(default_factory=list)
    injected_application_credential_source_ids: list[str] = Field(default_factory=list)


class AuthorizeSessionRequest(Strict):
    host_id: str | None = None
    scope_id: str | None = None
    scope_name: str | None = None
    name: str | None = None


class SecretOut(Out):
    raw: str
    decoded: dict[str, Any]


class SessionCredential(Out):
    credential_source: CredentialSourceInfo
    secret: SecretOut
    credential: dict[str, Any]


class SessionAuthorization(Out):
    session_id: str
    target_id: str
    scope: ScopeInfo
    created_time: Timestamp
    user_id: str
    host_set_id: str | None = None
    host_id: str | None = None
    type: str
    authorization_token: str
    connection_limit: int
    endpoint: str
    endpoint_port: int
    expiration: Timestamp
    credentials: list[SessionCredential] | None = None


# ---------------------------------------------------------------- credentials


class CredentialStoreItem(Resource):
    scope_id: str
    attributes: dict[str, Any] | None = None
    authorized_collection_actions: dict[str, list[str]] | None = None


class CredentialStoreCreate(Strict):
    scope_id: str
    type: Literal["static"] = "static"
    name: Name = None
    description: Description = None


class CredentialStoreUpdate(Strict):
    version: int = Field(ge=1)
    name: Name = None
    description: Description = None


class CredentialAttributes(Strict):
    username: str | None = Field(default=None, max_length=255)
    password: str | None = Field(default=None, max_length=65536)
    private_key: str | None = Field(default=None, max_length=65536)
    private_key_passphrase: str | None = Field(default=None, max_length=1024)
    object: dict[str, Any] | None = None


class CredentialItem(Resource):
    credential_store_id: str
    attributes: dict[str, Any]


class CredentialCreate(Strict):
    credential_store_id: str
    type: Literal["username_password", "ssh_private_key", "json", "password"]
    name: Name = None
    description: Description = None
    attributes: CredentialAttributes


class CredentialUpdate(Strict):
    version: int = Field(ge=1)
    name: Name = None
    description: Description = None
    attributes: CredentialAttributes | None = None


# ---------------------------------------------------------------- sessions and workers


class SessionState(Out):
    status: str
    start_time: Timestamp
    end_time: Timestamp | None = None


class SessionConnection(Out):
    client_tcp_address: str | None = None
    client_tcp_port: int | None = None
    endpoint_tcp_address: str | None = None
    endpoint_tcp_port: int | None = None
    bytes_up: str
    bytes_down: str
    closed_reason: str | None = None


class SessionItem(Out):
    id: str
    target_id: str
    scope: ScopeInfo
    created_time: Timestamp
    updated_time: Timestamp
    version: int
    type: str
    expiration_time: Timestamp
    auth_token_id: str
    user_id: str
    host_set_id: str | None = None
    host_id: str | None = None
    scope_id: str
    endpoint: str
    status: str
    states: list[SessionState] | None = None
    certificate: str | None = None
    termination_reason: str | None = None
    authorized_actions: list[str] = Field(default_factory=list)
    connections: list[SessionConnection] | None = None


class WorkerItem(Resource):
    scope_id: str
    address: str | None = None
    canonical_tags: dict[str, list[str]] | None = None
    config_tags: dict[str, list[str]] | None = None
    last_status_time: Timestamp | None = None
    release_version: str | None = None
    active_connection_count: int | None = None
    # only in the answer to :create:controller-led, once
    controller_generated_activation_token: str | None = None


class WorkerCreate(Strict):
    scope_id: str = "global"
    name: Name = None
    description: Description = None


class WorkerUpdate(Strict):
    version: int = Field(ge=1)
    name: Name = None
    description: Description = None


class ErrorDetailsField(Out):
    name: str
    description: str


class ErrorDetails(Out):
    request_fields: list[ErrorDetailsField] | None = None


class ErrorBody(Out):
    kind: str
    op: str
    message: str
    details: ErrorDetails | None = None


# ---------------------------------------------------------------- aliases


class AuthorizeSessionArguments(Strict):
    host_id: str | None = Field(default=None, max_length=32)


class AliasAttributes(Strict):
    authorize_session_arguments: AuthorizeSessionArguments | None = None


class AliasItem(Resource):
    scope_id: str
    value: str
    destination_id: str | None = None
    attributes: dict[str, Any] | None = None


class AliasCreate(Strict):
    scope_id: str
    type: str = "target"
    value: str | None = Field(default=None, max_length=1024)
    destination_id: str | None = Field(default=None, max_length=32)
    name: Name = None
    description: Description = None
    attributes: AliasAttributes | None = None


class AliasUpdate(Strict):
    version: int = Field(ge=1)
    type: str | None = None
    value: str | None = Field(default=None, max_length=1024)
    destination_id: str | None = Field(default=None, max_length=32)
    name: Name = None
    description: Description = None
    attributes: AliasAttributes | None = None


class ResolvableAliasItem(Out):
    id: str
    created_time: Timestamp
    updated_time: Timestamp
    value: str
    destination_id: str
    type: str


# ---------------------------------------------------------------- response bodies
# Reads, creates, updates and actions answer with the resource itself: Boundary's gateway
# uses ``response_body: "item"``, so there is no ``item`` envelope on the wire.


def list_response(model: type[BaseModel]) -> type[BaseModel]:
    """A list page whose items are ``model``."""
    name = model.__name__.removesuffix("Item") + "List"
    # ``list[model]`` built at runtime: the same GenericAlias, spelt so that a variable
    # is not used where a type checker expects a type (Any: pydantic's stubs for
    # create_model's field tuples differ between its releases)
    items: Any = GenericAlias(list, (model,))
    return create_model(name, __base__=ListResponse, items=(items, Field(default_factory=list)))


ScopeResponse = ScopeItem
AliasResponse = AliasItem
AuthMethodResponse = AuthMethodItem
AccountResponse = AccountItem
UserResponse = UserItem
RoleResponse = RoleItem
HostCatalogResponse = HostCatalogItem
HostResponse = HostItem
HostSetResponse = HostSetItem
TargetResponse = TargetItem
CredentialStoreResponse = CredentialStoreItem
CredentialResponse = CredentialItem
SessionResponse = SessionItem
WorkerResponse = WorkerItem


# ---------------------------------------------------------------- storage buckets, recordings


class StorageBucketItem(Resource):
    scope_id: str
    plugin: dict[str, Any] | None = None
    bucket_name: str
    bucket_prefix: str | None = None
    worker_filter: str | None = None
    attributes: dict[str, Any] | None = None
    secrets_hmac: str | None = None


class StorageBucketCreate(Strict):
    scope_id: str
    type: Literal["plugin"] | None = None
    name: Name = None
    description: Description = None
    plugin_name: str | None = Field(default=None, max_length=32)
    bucket_name: str = Field(min_length=1, max_length=1024)
    bucket_prefix: str | None = Field(default=None, max_length=1024)
    worker_filter: str | None = None
    attributes: dict[str, Any] | None = None
    secrets: dict[str, Any] | None = None


class StorageBucketUpdate(Strict):
    version: int = Field(ge=1)
    name: Name = None
    description: Description = None
    worker_filter: str | None = None
    attributes: dict[str, Any] | None = None
    secrets: dict[str, Any] | None = None


StorageBucketResponse = StorageBucketItem


class SessionRecordingItem(Out):
    id: str
    scope: ScopeInfo
    session_id: str
    storage_bucket_id: str
    type: str
    state: str
    mime_types: list[str] | None = None
    bytes_up: int | None = None
    bytes_down: int | None = None
    start_time: Timestamp | None = None
    end_time: Timestamp | None = None
    duration: str | None = None
    endpoint: str | None = None
    create_time_values: dict[str, Any] | None = None
    connection_recordings: list[dict[str, Any]] | None = None
    created_time: Timestamp
    updated_time: Timestamp
    authorized_actions: list[str] = Field(default_factory=list)
