"""`bconnect database init|migrate`: create or upgrade the controller's database schema."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import click

from bconnect.cli.options import CONTEXT_SETTINGS, Command, bool_option, group, string_option
from bconnect.cli.resources import help_text

__all__ = ["database"]

F = TypeVar("F", bound=Callable[..., Any])

database = group(
    "database",
    help_text(
        "Manage the controller's database: `init` creates the schema with an initial admin, "
        "`migrate` upgrades it to this bconnect's version (stop the controllers first), "
        "`rotate-keys` re-encrypts the secrets at rest with the config's root key.",
        "bconnect database init -config /etc/bconnect/controller.toml",
        "bconnect database migrate -database-url env://BCONNECT_DATABASE_URL",
        "bconnect database rotate-keys -config /etc/bconnect/controller.toml",
    ),
)


def _database_options(func: F) -> F:
    for decorator in reversed(
        [
            string_option(
                "config",
                metavar="FILE",
                help="A `bconnect server` config file: its [controller] database_url is used.",
            ),
            string_option(
                "database-url",
                "database_url",
                envvar="BCONNECT_DATABASE_URL",
                help="SQLite path or URL, or a PostgreSQL URL; a literal or env://VAR / "
                "file://PATH (env BCONNECT_DATABASE_URL).",
            ),
            string_option(
                "format",
                type=click.Choice(["table", "json"], case_sensitive=False),
                default="table",
                show_default=True,
                help="Output format.",
            ),
        ]
    ):
        func = decorator(func)
    return func


def _open(config: str | None, database_url: str | None):  # noqa: ANN202 - an Engine
    """The engine of the database named by ``-config`` or ``-database-url``."""
    from bconnect.config import ConfigError, load_config
    from bconnect.controller.storage.db import make_engine
    from bconnect.core.secrets import SecretRefError, resolve_secret_ref

    if config and database_url:
        source = click.get_current_context().get_parameter_source("database_url")
        if source != click.core.ParameterSource.ENVIRONMENT:
            raise click.UsageError("use -config or -database-url, not both")
        database_url = None  # BCONNECT_DATABASE_URL is likely what the file refers to
    if config:
        try:
            server_config = load_config(config)
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from None
        if server_config.controller is None:
            raise click.ClickException(f"{config}: has no [controller] section")
        url = server_config.controller.database_url
    elif database_url:
        try:
            url = resolve_secret_ref(database_url, must=False)
        except SecretRefError as exc:
            raise click.ClickException(f"-database-url: {exc}") from None
    else:
        raise click.UsageError("one of -config or -database-url is required")
    try:
        return make_engine(url)
    except Exception as exc:  # noqa: BLE001 - a bad URL is the user's problem
        raise click.ClickException(_open_error(exc, url)) from None


def _open_error(exc: Exception, url: Any) -> str:
    from bconnect.controller.server import open_error

    return open_error(exc, url)


def _echo_json(value: dict[str, Any]) -> None:
    click.echo(json.dumps(value, indent=2))


@database.command(cls=Command, context_settings=CONTEXT_SETTINGS)
@_database_options
def migrate(config: str | None, database_url: str | None, format: str) -> None:  # noqa: A002
    """Upgrade the database schema to this bconnect's newest revision.

    Controllers migrate on start too; this does it ahead of a rolling upgrade. A schema
    newer than this bconnect is refused.

    \b
    Example:
      bconnect database migrate -config /etc/bconnect/controller.toml
      bconnect database migrate -database-url ./bconnect.db -format json
    """
    from bconnect.controller.storage import db

    engine = _open(config, database_url)
    try:
        before = db.current_revision(engine)
        db.migrate(engine)
        after = db.current_revision(engine)
    except Exception as exc:  # noqa: BLE001 - unreachable, too new, ...: one line
        raise click.ClickException(_open_error(exc, engine.url)) from None
    finally:
        engine.dispose()
    if format.lower() == "json":
        _echo_json({"from_revision": before, "to_revision": after, "migrated": before != after})
    elif before == after:
        click.echo(f"Database schema is up to date (revision {after}).")
    else:
        click.echo(f"Database schema migrated from revision {before or 'none'} to {after}.")


@database.command(cls=Command, context_settings=CONTEXT_SETTINGS)
@_database_options
@string_option(
    "login-name",
    "login_name",
    default="admin",
    show_default=True,
    help="Login name of the initial admin account.",
)
@bool_option(
    "skip-auth-method-creation",
    "skip_auth_method",
    help="Create no auth method, admin user or admin role (only the schema and the global scope).",
)
def init(
    config: str | None,
    database_url: str | None,
    format: str,  # noqa: A002
    login_name: str,
    skip_auth_method: bool,
) -> None:
    """Create the schema in an empty database, with an initial admin.

    Like `boundary database init`: it creates the global scope and its login role, a
    password auth method, a user and account with a generated password (shown only
    now: keep it) and a role granting that user everything in global and below. A
    database that is already initialized is refused; use `migrate` to upgrade one.

    \b
    Example:
      bconnect database init -config /etc/bconnect/controller.toml
      bconnect database init -database-url ./bconnect.db -format json
    """
    from bconnect.controller.context import utcnow
    from bconnect.controller.routes.authmethods import LOGIN_NAME
    from bconnect.controller.seed import seed_initial
    from bconnect.controller.storage import db

    if len(login_name) < 3 or not LOGIN_NAME.fullmatch(login_name):
        raise click.BadParameter(
            "must be at least 3 lower-case letters, digits or . _ @ + -",
            param_hint="'-login-name'",
        )
    engine = _open(config, database_url)
    try:
        if _initialized(engine):
            raise click.ClickException(
                "database already initialized; use `bconnect database migrate` to upgrade it"
            )
        db.migrate(engine)  # a schema left by an init that failed half-way is reused
        with engine.begin() as conn:
            created = seed_initial(
                conn, utcnow(), login_name=login_name, create_auth_method=not skip_auth_method
            )
    except click.ClickException:
        raise
    except Exception as exc:  # noqa: BLE001 - unreachable database etc.: one line
        raise click.ClickException(_open_error(exc, engine.url)) from None
    finally:
        engine.dispose()
    if format.lower() == "json":
        _echo_json(created)
        return
    blocks = [
        ("Initial login role information", created["login_role"]),
        ("Initial authenticated user role information", created["authenticated_user_role"]),
    ]
    if "auth_method" in created:
        blocks += [
            ("Initial auth information", created["auth_method"]),
            ("Initial admin role information", created["admin_role"]),
        ]
    for title, values in blocks:
        click.echo(f"\n{title}:")
        width = max(len(_label(key)) for key in values) + 1
        for key, value in values.items():
            click.echo(f"  {_label(key) + ':':<{width}}  {value}")
    if "auth_method" in created:
        click.echo("\nThe password is shown only once: keep it somewhere safe.")


def _label(key: str) -> str:
    """``auth_method_id`` → ``Auth Method ID``."""
    return " ".join("ID" if w == "id" else w.capitalize() for w in key.split("_"))


def _initialized(engine: Any) -> bool:
    """A schema with its global scope: what a completed `init` leaves."""
    from sqlalchemy import text

    from bconnect.controller.storage import db

    if db.current_revision(engine) is None:
        return False
    with engine.connect() as conn:
        return conn.execute(text("SELECT 1 FROM scopes WHERE id = 'global'")).first() is not None


@database.command("rotate-keys", cls=Command, context_settings=CONTEXT_SETTINGS)
@string_option(
    "config",
    metavar="FILE",
    help="A `bconnect server` config file: its [controller] database_url, its [[kms]] purpose = "
    '"root" key and any purpose = "previous-root" keys.',
)
@string_option(
    "format",
    type=click.Choice(["table", "json"], case_sensitive=False),
    default="table",
    show_default=True,
    help="Output format.",
)
def rotate_keys(config: str | None, format: str) -> None:  # noqa: A002
    """Rotate the keys that encrypt secrets at rest.

    Every data key is wrapped with the config's root key (keys wrapped with an older root
    key need that key in a [[kms]] block with purpose = "previous-root"), a new data key is
    made, and every brokered credential and session private key is encrypted again with
    it (also those stored before bconnect encrypted them). Run it after putting a new root
    key in the config (the old one as previous-root), then restart the controllers and
    drop the old key. Safe to run while controllers serve; safe to run again.

    \b
    Example:
      bconnect database rotate-keys -config /etc/bconnect/controller.toml
    """
    from bconnect.config import ConfigError, load_config
    from bconnect.controller.kms import Keyring, KeyringError, rotate
    from bconnect.controller.storage import db

    if not config:
        raise click.UsageError("-config is required: the keys are in the config file")
    try:
        server_config = load_config(config)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if server_config.controller is None:
        raise click.ClickException(f"{config}: has no [controller] section")
    root = server_config.kms_key("root")
    engine = _open(config, None)
    try:
        db.check_schema(engine)
        keyring = Keyring(engine, root, server_config.kms_keys("previous-root"))
        keyring.load()
        counts = rotate(engine, keyring)
    except KeyringError as exc:
        raise click.ClickException(str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - unreachable database etc.: one line
        raise click.ClickException(_open_error(exc, engine.url)) from None
    finally:
        engine.dispose()
    if format.lower() == "json":
        _echo_json(
            {"root_key_id": root.key_id, **{k.replace(" ", "_"): v for k, v in counts.items()}}
        )
        return
    click.echo(f"Keys rotated: every data key is now wrapped with root key {root.key_id!r}.")
    for what, number in counts.items():
        click.echo(f"  {what}: {number}")
