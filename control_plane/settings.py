"""The one settings tree, filled from the environment and an optional ``.env`` file.

Nested fields use ``__``: ``CALLAGENT_ENGINE__VAD__KIND=webrtc``,
``CALLAGENT_SERVER__PORT=9000``. The usual provider names are accepted too
(``TELNYX_API_KEY``, ``TELNYX_PUBLIC_KEY``, ``DATABASE_URL``, ``REDIS_URL``).
Secrets are :class:`~pydantic.SecretStr` so they never print.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from engine.config import EngineConfig
from engine.conversation.config import AgentConfig
from engine.conversation.egress import EgressPolicy, ToolEgressConfig, parse_destinations
from engine.providers.config import ProvidersConfig

from .campaigns.settings import CampaignSettings
from .dashboard.settings import DashboardSettings
from .knowledge.settings import KnowledgeSettings
from .pricing import PriceTable

ENV_PREFIX = "CALLAGENT_"
NESTED_DELIMITER = "__"


def default_data_dir() -> Path:
    """``$XDG_DATA_HOME/callagent`` (``~/.local/share/callagent``): the same place whichever
    directory the server is started from, so a second start never opens an empty store."""
    base = os.environ.get("XDG_DATA_HOME", "").strip()
    return (Path(base) if base else Path.home() / ".local" / "share") / "callagent"


class ServerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = Field("127.0.0.1", description="Interface to listen on (0.0.0.0 in containers).")
    port: int = Field(8080, ge=0, le=65535)
    media_path: str = Field("/media-stream", description="WebSocket path Telnyx streams call audio to.")
    public_url: str | None = Field(
        None, description="Base URL Telnyx reaches this server at (for stream_url and webhooks)."
    )
    max_body_bytes: int = Field(
        1 << 20, ge=1024, description="Largest request body accepted (REST, webhooks); larger gets 413."
    )
    body_timeout_s: float = Field(
        10.0, gt=0, description="A request body (REST, webhooks) not fully received within this time gets 408."
    )
    access_log: bool = Field(
        False, description="Log one line per HTTP request (logger aiohttp.access). Off: /metrics counts them.")
    drain_grace_s: float = Field(
        30.0, ge=0,
        description="On SIGTERM: how long live calls may run on before their media streams are handed over "
        "(closed, for the recovery path to re-attach elsewhere). Webhooks are accepted until the process exits.",
    )


class StoreSettings(BaseModel):
    """The records store: PostgreSQL when ``DATABASE_URL`` is set, else SQLite under ``data_dir``."""

    model_config = ConfigDict(extra="forbid")

    pool_min_size: int = Field(1, ge=0, le=100, description="PostgreSQL: connections opened at start.")
    pool_max_size: int = Field(10, ge=1, le=500, description="PostgreSQL: most connections per process.")
    schema_name: str | None = Field(
        None,
        pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        description="PostgreSQL schema for the tables (created by migrate); default: the server's search_path.",
    )
    statement_cache_size: int = Field(
        100, ge=0, description="asyncpg prepared-statement cache; 0 behind a transaction-mode pooler (Supabase :6543)."
    )
    command_timeout_s: float = Field(10.0, gt=0, description="PostgreSQL: per-statement timeout.")
    auto_migrate: bool = Field(True, description="Apply pending migrations at start-up.")
    sqlite_filename: str = Field("callagent.sqlite3", description="SQLite file name inside data_dir.")


class ApiSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    call_starts_per_minute: int = Field(
        100, ge=1, description="Per organisation; shared across processes through Redis when REDIS_URL is set."
    )
    max_page_size: int = Field(200, ge=1, le=1000, description="Largest ``limit`` for list endpoints.")
    max_dnc_import_rows: int = Field(100_000, ge=1, description="Rows accepted by one DNC CSV import.")
    unconfirmed_dial_s: float = Field(
        180.0, gt=0,
        description="A call started through the API that is still queued without a Telnyx call this long after "
                    "its start (the process died mid-dial, and no webhook has proved the dial since) is marked "
                    "failed with dial_unconfirmed; it is never dialled again. Keep it above Telnyx's 60 s "
                    "command_id window plus the time its webhooks may take.",
    )
    sweep_interval_s: float = Field(30.0, gt=0, description="How often unconfirmed API dials are looked for.")


class WebhookSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tolerance_s: int = Field(300, ge=1, description="Largest clock difference accepted on a signed webhook.")
    poll_interval_s: float = Field(
        1.0, gt=0, description="How often the event worker looks for rows another process stored or left over."
    )
    max_attempts: int = Field(5, ge=1, description="Processing attempts before an event is parked with its error.")
    claim_lease_s: float = Field(
        60.0, gt=0, description="A claimed event not processed within this time is taken again (crashed worker)."
    )


class OutboundWebhookSettings(BaseModel):
    """Event webhooks to the organisations' own apps (``control_plane/webhooks``)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="Run the delivery worker (events are stored either way).")
    timeout_s: float = Field(15.0, gt=0, le=120, description="One delivery attempt's limit, connect to last byte.")
    backoff_base_s: float = Field(5.0, gt=0, description="Wait after the first failed attempt; doubles each time.")
    backoff_cap_s: float = Field(3600.0, gt=0, description="Longest wait between two attempts.")
    max_age_s: float = Field(
        86400.0, gt=0, description="An event not delivered this long after it was written is marked failed.")
    secret_grace_s: float = Field(
        86400.0, ge=0, description="After a secret rotation, how long the old secret still signs (with the new).")
    batch_size: int = Field(50, ge=1, le=1000, description="Deliveries claimed per round.")
    max_in_flight_per_org: int = Field(
        25, ge=1, description="Deliveries of one organisation in flight at once (per instance's claims, counted "
                              "across instances): one organisation's slow or failing endpoint cannot hold every "
                              "slot. Claims also take the organisations' queues in turn.")
    max_endpoints_per_org: int = Field(20, ge=1, description="Webhook endpoints one organisation may have.")
    replay_max_events: int = Field(
        10_000, ge=1, description="Deliveries one replay of a time range may queue; a larger range is refused.")
    replay_max_span_s: float = Field(
        7 * 86400.0, gt=0, description="Longest time range (until - since) one replay may cover.")
    lease_s: float = Field(
        60.0, gt=0, description="A claimed delivery not settled within this time is sent again (crashed worker).")
    poll_interval_s: float = Field(0.5, gt=0, description="How often due deliveries are looked for when idle.")
    allow_private_addresses: bool = Field(
        False,
        description="Let endpoint URLs reach loopback, private and other internal addresses (cloud metadata "
                    "excepted). For local mode and tests; never on a public deployment.",
    )
    allowed_destinations: tuple[str, ...] = Field(
        (), description="Host names or CIDRs endpoints may reach although they are internal.")

    @field_validator("allowed_destinations")
    @classmethod
    def _destinations(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        parse_destinations(value)
        return value

    def policy(self) -> EgressPolicy:
        return EgressPolicy.of(self.allowed_destinations, allow_private=self.allow_private_addresses)


class StreamSettings(BaseModel):
    """Media streams: who may open one, and how a call whose stream is lost gets it back."""

    model_config = ConfigDict(extra="forbid")

    accept_unknown: bool = Field(
        False,
        description="Run the default agent (no call records) for media streams this server did not dial or "
                    "answer, e.g. a TeXML <Stream>. Off: such streams are refused (401). Always on in local mode.",
    )
    recovery: bool = Field(True, description="Re-attach live calls whose media stream was lost (crash, drop).")
    sweep_interval_s: float = Field(2.0, gt=0, description="How often calls without a media stream are looked for.")
    lease_s: float = Field(
        6.0, gt=0,
        description="A live stream's lease, renewed while its socket is open; past it (the instance holding it "
                    "died) another instance re-attaches the call.",
    )
    drop_grace_s: float = Field(
        2.0, ge=0,
        description="After a stream's socket closes on a live call, how long its hangup webhook has to arrive "
                    "before the call is re-attached.",
    )
    answer_grace_s: float = Field(
        10.0, ge=0, description="An answered call may be without a stream this long before it is re-attached.")
    setup_timeout_s: float = Field(
        5.0, gt=0, le=60,
        description="How long a new stream waits for its call's setup (the agent, its history, tools and knowledge "
                    "bases, from the records) before the default agent takes the call. Records slow under load "
                    "cost the caller a moment of silence (their words are kept), not the wrong agent.",
    )
    hangup_grace_s: float = Field(
        75.0, ge=0,
        description="After Telnyx says a call ended (its end_time), how long its call.hangup webhook may still be "
                    "on its way before the call is ended without it (lost_after_crash). Telnyx retries a webhook "
                    "for up to 60 s (webhook_retries_policies), each attempt waiting up to 2 s for the answer.",
    )
    attach_timeout_s: float = Field(
        15.0, gt=0, description="After a re-attach, how long the new stream has to arrive before another try.")
    max_reattach: int = Field(
        3, ge=1, description="Re-attaches of one call without the stream arriving before the call is hung up.")
    recovery_line: str = Field(
        "Sorry, we got cut off for a second. I'm back now.", max_length=500,
        description="What the agent says when it picks a call up again.",
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=NESTED_DELIMITER,
        env_file=".env",
        extra="ignore",
        populate_by_name=True,
    )

    server: ServerSettings = ServerSettings()
    engine: EngineConfig = EngineConfig()
    providers: ProvidersConfig = ProvidersConfig()
    agent: AgentConfig = Field(AgentConfig(),
                               description="The agent for calls that carry no agent_config of their own.")
    tools: ToolEgressConfig = Field(
        ToolEgressConfig(), description="Where agents' HTTP tools may connect, and how much of a reply is read."
    )
    personalities_file: Path | None = Field(None, description="TOML file of extra [personalities.<name>] tables.")
    store: StoreSettings = StoreSettings()
    api: ApiSettings = ApiSettings()
    webhooks: WebhookSettings = WebhookSettings()
    outbound_webhooks: OutboundWebhookSettings = OutboundWebhookSettings()
    campaigns: CampaignSettings = CampaignSettings()
    pricing: PriceTable = Field(PriceTable(), description="Prices of a call's usage (docs/usage.md).")
    streams: StreamSettings = StreamSettings()
    dashboard: DashboardSettings = DashboardSettings()
    knowledge: KnowledgeSettings = KnowledgeSettings()
    log_level: str = Field("INFO", description="Python logging level.")
    log_format: Literal["text", "json"] = Field(
        "text", description="json: one JSON object per line (time, level, logger, message, call_id when known), "
        "for log collectors.")
    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Where the embedded store keeps its files and keys (made absolute; default "
        "$XDG_DATA_HOME/callagent, else ~/.local/share/callagent).",
    )

    telnyx_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("CALLAGENT_TELNYX_API_KEY", "TELNYX_API_KEY")
    )
    telnyx_connection_id: str | None = Field(
        None,
        validation_alias=AliasChoices("CALLAGENT_TELNYX_CONNECTION_ID", "TELNYX_CONNECTION_ID"),
        description="Call Control application id used to dial.",
    )
    telnyx_api_base: str = Field(
        "https://api.telnyx.com/v2",
        validation_alias=AliasChoices("CALLAGENT_TELNYX_API_BASE", "TELNYX_BASE_URL"),
        description="Telnyx REST base URL (point it at the emulator for local runs).",
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
    redis_url: SecretStr | None = Field(
        None, validation_alias=AliasChoices("CALLAGENT_REDIS_URL", "REDIS_URL"),
        description="redis://host:6379/0 (rediss:// for TLS) for one server; redis+cluster://host:6379 "
        "(rediss+cluster://) for a Redis Cluster, any node as the host.",
    )
    redis_key_prefix: str = Field(
        "callagent:", pattern=r"^[^{}]*$",
        description="Prefix of every Redis key this process writes. No braces: a hash tag in it would put "
        "every key in one Redis Cluster slot.",
    )
    session_ttl_s: int = Field(3600, ge=60, description="Lifetime of a call's session in the session store.")
    encryption_key: SecretStr | None = Field(
        None,
        description=(
            "Base64 32-byte AES-256-GCM key for phone numbers and transcripts at rest. Required with "
            "DATABASE_URL; with the embedded store one is generated into data_dir on first use."
        ),
    )
    lookup_hash_key: SecretStr | None = Field(
        None,
        description="Base64 key (>= 32 bytes) for the keyed hash (HMAC-SHA256) that finds phone numbers; "
        "separate from encryption_key. Same default rule.",
    )

    @field_validator("data_dir", mode="after")
    @classmethod
    def _absolute_data_dir(cls, value: Path) -> Path:
        return value.expanduser().absolute()

    @property
    def campaign_prices(self) -> PriceTable:
        """How campaign calls are priced when the campaign sets no rates of its own."""
        rates = self.campaigns.cost_rates
        return rates.price_table() if rates is not None else self.pricing

    @property
    def campaign_currency(self) -> str:
        return self.campaign_prices.currency

    @property
    def local_mode(self) -> bool:
        """The bench's emulators stand in for the providers (and for Telnyx, without its credentials)."""
        mode = self.providers.mode
        return mode == "local" or (mode == "auto" and self.telnyx_api_key is None)

    @field_validator(
        "telnyx_api_key", "stream_auth_token", "database_url", "redis_url", "encryption_key", "lookup_hash_key",
        "telnyx_public_key", "telnyx_connection_id", mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        # `TELNYX_API_KEY=` in a .env or a compose file means "not configured", not an empty key
        # that fails later in a provider client with a confusing error.
        if isinstance(value, str) and not value.strip():
            return None
        return value
