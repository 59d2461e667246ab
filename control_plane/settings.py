"""The one settings tree, filled from the environment and an optional ``.env`` file.

Nested fields use ``__``: ``CALLAGENT_ENGINE__VAD__KIND=webrtc``,
``CALLAGENT_SERVER__PORT=9000``. The usual provider names are accepted too
(``TELNYX_API_KEY``, ``TELNYX_PUBLIC_KEY``, ``DATABASE_URL``, ``REDIS_URL``).
Secrets are :class:`~pydantic.SecretStr` so they never print.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from engine.config import EngineConfig


class ServerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = Field("127.0.0.1", description="Interface to listen on (0.0.0.0 in containers).")
    port: int = Field(8080, ge=0, le=65535)
    media_path: str = Field("/media-stream", description="WebSocket path Telnyx streams call audio to.")
    public_url: str | None = Field(
        None, description="Base URL Telnyx reaches this server at (for stream_url and webhooks)."
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CALLAGENT_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
    )

    server: ServerSettings = ServerSettings()
    engine: EngineConfig = EngineConfig()
    log_level: str = Field("INFO", description="Python logging level.")
    data_dir: Path = Field(Path("data"), description="Where the embedded store keeps its files.")

    telnyx_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("CALLAGENT_TELNYX_API_KEY", "TELNYX_API_KEY")
    )
    telnyx_public_key: str | None = Field(
        None,
        validation_alias=AliasChoices("CALLAGENT_TELNYX_PUBLIC_KEY", "TELNYX_PUBLIC_KEY"),
        description="Base64 Ed25519 public key that signs Telnyx webhooks.",
    )
    stream_auth_token: SecretStr | None = Field(
        None,
        description="When set, media streams must present it in x-telnyx-streaming-auth-token.",
    )
    database_url: SecretStr | None = Field(
        None, validation_alias=AliasChoices("CALLAGENT_DATABASE_URL", "DATABASE_URL")
    )
    redis_url: SecretStr | None = Field(None, validation_alias=AliasChoices("CALLAGENT_REDIS_URL", "REDIS_URL"))
