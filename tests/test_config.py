import pytest

from config import ConfigError, load_settings


def test_no_settings_is_the_embedded_default(tmp_path):
    settings = load_settings({"HARPOON_INSTANCE_DIR": str(tmp_path)})
    assert settings.database_url == f"sqlite:///{tmp_path / 'harpoon.db'}"
    assert settings.embedded_database and settings.embedded_queue
    assert (tmp_path / "encryption.key").stat().st_mode & 0o777 == 0o600
    # The generated key is kept: secrets stay readable across restarts.
    assert (
        load_settings({"HARPOON_INSTANCE_DIR": str(tmp_path)}).encryption_keys
        == settings.encryption_keys
    )


def test_environment_switches_to_postgresql_and_redis(tmp_path):
    settings = load_settings(
        {
            "DATABASE_URL": "postgresql://harpoon@db/harpoon",
            "REDIS_URL": "redis://cache:6379/0",
            "HARPOON_ENCRYPTION_KEYS": "new-key, old-key",
            "HARPOON_SECRET_KEY": "s3cret",
            "HARPOON_CALLBACK_MAX_AGE_SECONDS": "60",
        }
    )
    assert settings.database_url == "postgresql+psycopg://harpoon@db/harpoon"
    assert not settings.embedded_queue
    assert settings.encryption_keys == ("new-key", "old-key")
    assert settings.callback_max_age_seconds == 60


def test_postgresql_requires_an_encryption_key_and_a_secret_key():
    with pytest.raises(ConfigError, match="HARPOON_ENCRYPTION_KEYS is required"):
        load_settings({"DATABASE_URL": "postgresql://db/harpoon"})
    with pytest.raises(ConfigError, match="HARPOON_SECRET_KEY is required"):
        load_settings({"DATABASE_URL": "postgresql://db/harpoon", "HARPOON_ENCRYPTION_KEYS": "k"})


def test_malformed_numbers_name_the_variable():
    with pytest.raises(ConfigError, match="HARPOON_INBOX_BATCH_SIZE='many'"):
        load_settings({"HARPOON_INBOX_BATCH_SIZE": "many"})


def test_unknown_override_is_refused():
    with pytest.raises(ConfigError, match="unknown settings: nope"):
        load_settings({}, nope=1)
