"""Settings come from `CARDS_*` (and `DATABASE_URL`) with documented defaults, and a bad one stops
the start with one line naming it."""

from __future__ import annotations

import pytest

from cards_api.settings import AuthMode, LogFormat, SettingsError, load_settings


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE_URL", "CARDS_AUTH_MODE", "CARDS_IDEMPOTENCY_TTL", "CARDS_LOG_FORMAT"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.database_url is None
    assert settings.auth_mode is AuthMode.API_KEY
    assert settings.idempotency_ttl == 86400
    assert settings.log_format is LogFormat.JSON


def test_environment_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@db/cards")
    monkeypatch.setenv("CARDS_AUTH_MODE", "header")
    monkeypatch.setenv("CARDS_IDEMPOTENCY_TTL", "3600")
    monkeypatch.setenv("CARDS_LOG_LEVEL", "debug")
    monkeypatch.setenv("CARDS_LOG_FORMAT", "console")
    monkeypatch.setenv("CARDS_DATA_DIR", "/srv/cards")
    settings = load_settings()
    assert settings.database_url == "postgresql://u@db/cards"
    assert settings.auth_mode is AuthMode.HEADER
    assert settings.idempotency_ttl == 3600
    assert settings.log_level.value == "DEBUG"
    assert str(settings.data_dir) == "/srv/cards"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CARDS_AUTH_MODE", "none"),
        ("CARDS_IDEMPOTENCY_TTL", "soon"),
        ("CARDS_IDEMPOTENCY_TTL", "0"),
        ("CARDS_LOG_FORMAT", "xml"),
        ("CARDS_LOG_LEVEL", "loud"),
        ("DATABASE_URL", "mysql://db"),
    ],
)
def test_a_bad_setting_is_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith(f"invalid setting {name}:")
    assert "\n" not in message
