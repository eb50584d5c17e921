"""Password references in store URLs: moved out by the CLI, resolved where a store is opened."""

from __future__ import annotations

import stat
from urllib.parse import unquote, urlsplit

import pytest

from deployment.errors import BadInput
from deployment.secrets import has_literal_password, resolve_secrets, stash_password
from deployment.sessions.stores import open_store


@pytest.fixture(autouse=True)
def secrets_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("SNAKEPIT_SECRETS_DIR", str(tmp_path / "secrets"))
    return tmp_path / "secrets"


def test_a_literal_password_moves_into_a_private_file_and_comes_back(secrets_dir):
    url = "postgresql://bob:p%40ss:w0rd@db.example:5432/sessions?table=t"
    stashed = stash_password(url)
    assert "p%40ss" not in stashed and "w0rd" not in stashed and not has_literal_password(stashed)
    assert stashed.startswith("postgresql://bob:${secret:pw-") and stashed.endswith("}@db.example:5432/sessions?table=t")
    (file,) = secrets_dir.iterdir()
    assert file.read_text() == "p@ss:w0rd" and stat.S_IMODE(file.stat().st_mode) == 0o600
    back = resolve_secrets(stashed)
    assert unquote(urlsplit(back).password) == "p@ss:w0rd" and urlsplit(back).hostname == "db.example"
    assert stash_password(stashed) == stashed  # a reference stays as it is


def test_urls_without_a_password_are_left_alone(secrets_dir):
    for url in ("sqlite:///tmp/x.db", "postgresql://postgres@127.0.0.1/test", "redis://127.0.0.1:6379/0", "jsonl:///a/b.jsonl"):
        assert stash_password(url) == url and resolve_secrets(url) == url
    assert not secrets_dir.exists()


def test_an_env_reference_resolves_from_the_environment(monkeypatch):
    monkeypatch.setenv("SESSIONS_PW", "s3cr/t")
    assert urlsplit(resolve_secrets("redis://:${env:SESSIONS_PW}@h:6379/0")).password == "s3cr%2Ft"


def test_a_reference_that_cannot_be_resolved_is_bad_input_naming_it(monkeypatch):
    monkeypatch.delenv("NO_SUCH_PW", raising=False)
    with pytest.raises(BadInput, match=r"\$\{env:NO_SUCH_PW\} is not set"):
        resolve_secrets("postgresql://bob:${env:NO_SUCH_PW}@h/db")
    with pytest.raises(BadInput, match=r"\$\{secret:pw-missing\} cannot be read"):
        open_store("postgresql://bob:${secret:pw-missing}@h/db")
