"""Accounts: scrypt hashes, password policy, roles, scopes, first administrator, CLI."""

from __future__ import annotations

import io
import sys

import pytest

from viewer import cli
from viewer.accounts import Accounts, Role, hash_password, parse_scope, verify_password
from viewer.db import ViewerDB
from viewer.errors import AccountError


@pytest.fixture
def accounts(tmp_path):
    db = ViewerDB(tmp_path / "v.db")
    yield Accounts(db, hash_n=2**10)
    db.close()


def test_scrypt_hash_is_salted_and_verifies():
    a, b = hash_password("same password", n=2**10), hash_password("same password", n=2**10)
    assert a != b and a.startswith("scrypt$1024$8$1$")
    assert verify_password("same password", a) and not verify_password("other", a)
    assert not verify_password("same password", "garbage")
    assert not verify_password("same password", "bcrypt$1$2$3$4$5")


def test_add_validates(accounts):
    accounts.add("officer", "long enough pw", Role.DUTY_OFFICER, now=1.0,
                 sites=["village"], cameras=["village/gate"])
    with pytest.raises(AccountError, match="already exists"):
        accounts.add("officer", "long enough pw", "reviewer", now=1.0)
    with pytest.raises(AccountError, match="role: 'boss'"):
        accounts.add("boss", "long enough pw", "boss", now=1.0)
    with pytest.raises(AccountError, match="at least 10"):
        accounts.add("short", "short", "reviewer", now=1.0)
    with pytest.raises(AccountError, match="username"):
        accounts.add("Bad Name", "long enough pw", "reviewer", now=1.0)
    user = accounts.require("officer")
    assert user.may_see_camera("village", "gate")
    assert not user.may_see_camera("village", "yard")
    assert not user.may_see_site("school")


def test_scopes():
    assert parse_scope("village, school", "sites") == ("village", "school")
    assert parse_scope("*", "cameras") == ("*",)
    assert parse_scope("village/*,school/gate", "cameras") == ("village/*", "school/gate")
    for bad, what in (("village", "cameras"), ("a/b/c", "cameras"), ("bad site", "sites")):
        with pytest.raises(AccountError):
            parse_scope(bad, what)


def test_first_start_creates_one_administrator(accounts):
    password = accounts.ensure_admin(now=1.0)
    assert password and len(password) >= 16
    admin = accounts.require("admin")
    assert admin.role is Role.ADMINISTRATOR and admin.sites == ("*",)
    assert verify_password(password, accounts.password_hash(admin))
    assert accounts.ensure_admin(now=2.0) is None


def test_lock_counts_and_password_reset_unlocks(accounts):
    user = accounts.add("officer", "long enough pw", Role.DUTY_OFFICER, now=1.0)
    for _ in range(3):
        user = accounts.record_failure(user, max_failed=3)
    assert user.locked
    user = accounts.set_password("officer", "a new long password", now=2.0)
    assert not user.locked and user.failed_logins == 0


def _run_cli(monkeypatch, config_path, *args, stdin=""):
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    return cli.main(["--config", str(config_path), "user", *args])


def test_cli_user_commands(tmp_path, monkeypatch, capsys):
    config = tmp_path / "viewer.toml"
    config.write_text(f'[storage]\nstate_dir = "{tmp_path}"\n')
    assert _run_cli(monkeypatch, config, "add", "duty1", "--role", "duty_officer",
                    "--sites", "village", "--cameras", "village/*", "--password-stdin",
                    stdin="a long password\n") == 0
    assert _run_cli(monkeypatch, config, "disable", "duty1") == 0
    assert _run_cli(monkeypatch, config, "list") == 0
    out = capsys.readouterr().out
    assert "duty1" in out and "duty_officer" in out and "disabled" in out
    assert "sites=village" in out
    assert _run_cli(monkeypatch, config, "passwd", "nobody", "--password-stdin",
                    stdin="a long password\n") == 2
    assert "nobody" in capsys.readouterr().err
    assert _run_cli(monkeypatch, config, "add", "x1", "--role", "reviewer",
                    "--password-stdin", stdin="short\n") == 2
    db = ViewerDB(tmp_path / "viewer.db")
    try:
        actions = [r["detail"] for r in db.query_audit(action="config_change")]
        assert len(actions) == 2 and all("cli:" in r["username"]
                                         for r in db.query_audit(action="config_change"))
    finally:
        db.close()
