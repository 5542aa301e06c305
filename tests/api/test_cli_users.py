"""``tiandi users``: no default admin; the first one is made here, its password shown once."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner, Result

from api import accounts
from api.roles import Role
from controllers.audit import AuditRecord
from tiandi.cli import app


def tiandi(database_url: str, *args: str, stdin: str | None = None) -> Result:
    env = {"TIANDI_DATABASE_URL": database_url, "TIANDI_ENVIRONMENT": "development"}
    return CliRunner().invoke(app, list(args), env=env, input=stdin)


def test_adding_an_admin_prints_a_generated_password_once(
    database_url: str, session_factory: sessionmaker[Session]
) -> None:
    result = tiandi(database_url, "users", "add", "--role", "admin", "wang.fang")
    assert result.exit_code == 0, result.output
    match = re.search(r"^password: (\S+)$", result.stdout, re.MULTILINE)
    assert match is not None, result.stdout
    password = match.group(1)
    assert len(password) >= 20
    assert result.stdout.count(password) == 1
    with session_factory() as session:
        user = accounts.authenticate(session, "wang.fang", password)
        assert user.role is Role.ADMIN
        record = session.scalars(select(AuditRecord)).one()
    assert record.action == "user.create"
    assert record.actor.startswith("cli")
    assert password not in str(record.after)


def test_adding_with_a_password_from_stdin(
    database_url: str, session_factory: sessionmaker[Session]
) -> None:
    result = tiandi(
        database_url, "users", "add", "li.na", "--password-stdin", stdin="a-long-pass-phrase\n"
    )
    assert result.exit_code == 0, result.output
    assert "password:" not in result.stdout
    with session_factory() as session:
        assert accounts.authenticate(session, "li.na", "a-long-pass-phrase").role is Role.VIEWER
    short = tiandi(database_url, "users", "add", "x.y", "--password-stdin", stdin="short\n")
    assert short.exit_code == 1
    assert "at least 12 characters" in short.output


def test_list_set_role_disable_enable(database_url: str) -> None:
    assert tiandi(database_url, "users", "list").stdout.startswith("no users")
    tiandi(database_url, "users", "add", "--role", "admin", "boss")
    tiandi(database_url, "users", "add", "li.na")
    assert tiandi(database_url, "users", "set-role", "li.na", "operator").exit_code == 0
    assert tiandi(database_url, "users", "disable", "li.na").exit_code == 0
    listing = tiandi(database_url, "users", "list").stdout.splitlines()
    assert re.match(r"boss\s+admin\s+enabled", listing[0])
    assert re.match(r"li.na\s+operator\s+disabled", listing[1])
    assert tiandi(database_url, "users", "enable", "li.na").exit_code == 0
    reset = tiandi(database_url, "users", "reset-password", "li.na")
    assert reset.exit_code == 0 and "password: " in reset.stdout


def test_mistakes_end_with_a_message_not_a_trace(database_url: str) -> None:
    tiandi(database_url, "users", "add", "--role", "admin", "boss")
    for args, expected in (
        (("users", "disable", "nobody"), "no user 'nobody'"),
        (("users", "add", "boss"), "already exists"),
        (("users", "add", "Bad Name"), "not a valid user name"),
        (("users", "disable", "boss"), "only enabled admin"),
    ):
        result = tiandi(database_url, *args)
        assert result.exit_code == 1, args
        assert expected in result.output, result.output
        assert "Traceback" not in result.output
    bad_role = tiandi(database_url, "users", "set-role", "boss", "root")
    assert bad_role.exit_code == 2


@pytest.mark.parametrize(
    "command", ["add", "list", "set-role", "disable", "enable", "reset-password"]
)
def test_every_command_has_help(command: str) -> None:
    result = CliRunner().invoke(app, ["users", command, "--help"])
    assert result.exit_code == 0
    assert len(result.stdout.strip().splitlines()) > 3
