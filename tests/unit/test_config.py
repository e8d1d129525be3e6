"""Settings: the seed's variable names, warroom.toml, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from warroom.config import Settings
from warroom.errors import ConfigurationError


def test_defaults() -> None:
    settings = Settings.load()
    assert settings.backup_dir == Path("./data/backups")
    assert settings.checkpoint_retention_days == 7
    assert settings.database_checkpoint_schedule == "0 3 * * *"
    assert settings.catalog_url == "sqlite:///data/checkpoints/catalog.db"


def test_the_default_catalog_is_on_the_checkpoint_volume(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHECKPOINT_DIR", "/app/checkpoints")
    assert Settings.load().catalog_url == "sqlite:////app/checkpoints/catalog.db"


@pytest.mark.parametrize(
    ("env", "options", "address"),
    [
        ({}, (None, None), ("127.0.0.1", 8000)),
        ({"HOST": "10.9.9.9"}, (None, None), ("127.0.0.1", 8000)),  # not ours
        ({"PORT": "7000"}, (None, None), ("0.0.0.0", 7000)),
        ({"PORT": "7000", "WARROOM_PORT": "7100"}, (None, None), ("0.0.0.0", 7100)),
        ({"WARROOM_HOST": "10.0.0.5", "WARROOM_PORT": "7100"}, (None, None), ("10.0.0.5", 7100)),
        ({"PORT": "7000", "WARROOM_HOST": "127.0.0.1"}, (None, None), ("127.0.0.1", 7000)),
        ({"PORT": "7000"}, ("127.0.0.2", 9000), ("127.0.0.2", 9000)),
    ],
)
def test_listen_address(
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    options: tuple[str | None, int | None],
    address: tuple[str, int],
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert Settings.load().listen_address(*options) == address


def test_a_port_that_is_not_a_port_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "eighty")
    with pytest.raises(ConfigurationError, match="PORT"):
        Settings.load()


def test_seed_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKUP_DIR", "/app/backups")
    monkeypatch.setenv("CHECKPOINT_DIR", "/app/checkpoints")
    monkeypatch.setenv("CHECKPOINT_RETENTION_DAYS", "14")
    monkeypatch.setenv("ENABLE_AUTO_CHECKPOINTS", "false")
    monkeypatch.setenv("WARROOM_CATALOG_URL", "postgresql://db/catalog")
    settings = Settings.load()
    assert settings.backup_dir == Path("/app/backups")
    assert settings.checkpoint_dir == Path("/app/checkpoints")
    assert settings.checkpoint_retention_days == 14
    assert settings.enable_auto_checkpoints is False
    assert settings.catalog_url == "postgresql://db/catalog"


def test_toml_file_and_environment_precedence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "warroom.toml").write_text('backup_dir = "/srv/b"\ncompression_level = 9\n')
    monkeypatch.setenv("WARROOM_COMPRESSION_LEVEL", "5")
    settings = Settings.load()
    assert settings.backup_dir == Path("/srv/b")
    assert settings.compression_level == 5


def test_invalid_values_name_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHECKPOINT_RETENTION_DAYS", "soon")
    with pytest.raises(ConfigurationError, match="checkpoint_retention_days|CHECKPOINT_RETENTION"):
        Settings.load()


def test_unknown_key_in_toml_is_refused(tmp_path: Path) -> None:
    (tmp_path / "warroom.toml").write_text('backup_dri = "/typo"\n')
    with pytest.raises(ConfigurationError, match="backup_dri"):
        Settings.load()


def test_missing_config_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WARROOM_CONFIG", "/nonexistent/warroom.toml")
    with pytest.raises(ConfigurationError, match="WARROOM_CONFIG"):
        Settings.load()
