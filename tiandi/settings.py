"""The one Settings object: environment (TIANDI_*), an optional .env, an optional config file.

Precedence, highest first: explicit init arguments, TIANDI_* environment, .env, the config file
(``--config`` / ``TIANDI_CONFIG``, TOML or YAML), defaults.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from inventory.errors import TiandiError

PLACEHOLDER_SECRETS = frozenset({"", "changethis", "changeme", "secret", "tiandi", "development"})


class ConfigError(TiandiError):
    """The configuration cannot be used; the message says which setting and how to fix it."""


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror}") from err
    try:
        if path.suffix == ".toml":
            data: Any = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text) or {}
        else:
            raise ConfigError(f"config file {path} must end in .toml, .yaml or .yml")
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as err:
        raise ConfigError(f"config file {path} is not valid: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of setting names to values")
    # A [tiandi] table / tiandi: mapping is accepted so the file can be shared with other tools.
    section = data.get("tiandi", data)
    return dict(section) if isinstance(section, dict) else {}


class _ConfigFileSource(PydanticBaseSettingsSource):
    def __init__(self, settings_cls: type[BaseSettings], path: Path | None) -> None:
        super().__init__(settings_cls)
        self._data = _read_config_file(path) if path else {}

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return {k: v for k, v in self._data.items() if k in self.settings_cls.model_fields}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TIANDI_", env_file=".env", extra="ignore", validate_default=True
    )

    environment: Literal["development", "production"] = Field(
        default="production",
        description="development relaxes the secret-key check; never use it on a real network",
    )
    database_url: str = Field(
        default="sqlite:///./tiandi.db",
        description="SQLAlchemy URL: sqlite:///path or postgresql+psycopg://user@host/db",
    )
    secret_key: SecretStr = Field(
        default=SecretStr(""),
        description="signs access tokens; at least 32 random characters",
    )
    access_token_minutes: int = Field(default=30, ge=1, le=24 * 60)
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8400, ge=1, le=65535)

    influx_url: str | None = Field(
        default=None, description="InfluxDB base URL; unset means the embedded metric store"
    )
    influx_database: str = "tiandi"
    influx_username: str | None = None
    influx_password: SecretStr | None = None
    influx_token: SecretStr | None = Field(default=None, description="InfluxDB 2.x/3.x token")
    influx_org: str | None = None
    influx_bucket: str | None = None

    ssh_host_keys: Literal["strict", "tofu"] = Field(
        default="strict",
        description="strict: only keys recorded in <data dir>/ssh/known_hosts (an operator trusts "
        "them with `tiandi devices trust`); tofu: record unknown keys on first contact — labs "
        "only, logged as a WARNING every time",
    )
    ssh_workers: int = Field(
        default=64, ge=1, le=512, description="SSH sessions at once (device drivers)"
    )
    failover_max_concurrency: int = Field(
        default=32, ge=1, le=512, description="routers the failover engine changes at once"
    )

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @model_validator(mode="after")
    def _enforce_real_secret(self) -> Settings:
        if self.environment == "development":
            return self
        key = self.secret_key.get_secret_value()
        if key.lower() in PLACEHOLDER_SECRETS or len(key) < 32:
            raise ValueError(
                "TIANDI_SECRET_KEY is empty, a placeholder or shorter than 32 characters. "
                "Generate one with `python3 -c 'import secrets; print(secrets.token_urlsafe(48))'` "
                "and set it in the environment or the config file, or set "
                "TIANDI_ENVIRONMENT=development for a local trial"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = os.environ.get("TIANDI_CONFIG")
        return (
            init_settings,
            env_settings,
            dotenv_settings,
            _ConfigFileSource(settings_cls, Path(path) if path else None),
            file_secret_settings,
        )


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build Settings, turning validation failures into one readable ConfigError."""
    from pydantic import ValidationError

    if config_file is not None:
        os.environ["TIANDI_CONFIG"] = str(config_file)
    try:
        return Settings(**overrides)
    except ValidationError as err:
        lines = [
            f"  {'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}"
            for e in err.errors()
        ]
        raise ConfigError("invalid Tiandi settings:\n" + "\n".join(lines)) from err
