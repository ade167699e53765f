"""Settings: one pydantic-settings class per service, each with its own env prefix, nested in one root.

A configured URL always wins over an embedded default. Nothing here connects to anything.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from openmemory_core.contracts import DEFAULT_PARTITIONS, MAX_TEXT_CHARS

#: Per-key MCP requests per minute when `rate_limit_per_minute` is not set.
DEFAULT_RATE_LIMIT = 600
LOOPBACK_RATE_LIMIT = 6000
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


def _public_url(value: str | None) -> str | None:
    """An http(s) URL with a host, without a trailing slash (the address people reach us at)."""
    if value is None or not value.strip():
        return None
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not an http(s) URL with a host")
    return value.strip().rstrip("/")


def _allow_public(url: str | None, hosts: list[str], origins: list[str]) -> None:
    """Add a public URL's host (as sent, and with any port) and origin to the allowed lists."""
    if url is None:
        return
    parts = urlsplit(url)
    for host in (parts.netloc.lower(), f"{(parts.hostname or '').lower()}:*"):
        if host not in hosts:
            hosts.append(host)
    origin = f"{parts.scheme}://{parts.netloc.lower()}"
    if origin not in origins:
        origins.append(origin)


def default_data_dir() -> Path:
    return Path.home() / ".openmemory"


class CoreSettings(BaseSettings):
    """Where data lives and which stores to use (env prefix `OPENMEMORY_`)."""

    model_config = SettingsConfigDict(env_prefix="OPENMEMORY_", extra="ignore")

    data_dir: Path = Field(default_factory=default_data_dir)
    nats_url: str | None = None
    qdrant_url: str | None = None
    qdrant_api_key: SecretStr | None = None
    qdrant_shard_number: int = Field(
        default=1,
        ge=1,
        le=64,
        description="shards of a new collection on a Qdrant server (cluster: >= nodes)",
    )
    qdrant_replication_factor: int = Field(
        default=1,
        ge=1,
        le=8,
        description="copies of each shard on a Qdrant server cluster (3 on three nodes)",
    )
    vector_engine: str = Field(default="edge", pattern="^(edge|local)$", description="embedded engine")
    model_threads: int = Field(
        default=0,
        ge=0,
        le=64,
        description="threads of the local embedding model per call; 0: onnxruntime's choice, one per "
        "core of the machine, which a container's CPU limit does not lower",
    )
    graph_url: str | None = Field(
        default=None, description="falkordb://host:port (FalkorDB), or bolt://host:7687 / neo4j://… (Neo4j)"
    )
    graph_user: str | None = None
    graph_password: SecretStr | None = None
    partitions: int = Field(default=DEFAULT_PARTITIONS, ge=1, le=256)
    nats_replicas: int = Field(
        default=1,
        ge=1,
        le=5,
        description="copies of every JetStream stream and KV bucket: 1 on one NATS server, 3 on a "
        "three-node cluster; an existing stream is scaled to it at start",
    )
    default_user: str = "default"
    log_level: str = "INFO"
    secrets_key: SecretStr | None = Field(
        default=None, description="seals model API keys saved in the dashboard (else <data dir>/secrets.key)"
    )
    allow_private_urls: bool = Field(
        default=False,
        description="let LLM/embedder URLs saved from the dashboard reach loopback or private addresses",
    )
    forwarded_allow_ips: str = Field(
        default="",
        description="proxies (IPs or CIDRs, comma-separated) whose X-Forwarded-Proto/-For are trusted, "
        "e.g. the ingress controller's pod range; empty: none",
    )

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()


class EmbedderSettings(BaseSettings):
    """Which embedding model (env prefix `OPENMEMORY_EMBEDDER_`). Changing it starts a new collection;
    `openmemory reembed` moves the stored memories into it."""

    model_config = SettingsConfigDict(env_prefix="OPENMEMORY_EMBEDDER_", extra="ignore")

    provider: str = Field(default="local", pattern="^(local|openai)$")
    model: str = "text-embedding-3-small"
    base_url: str | None = None
    api_key: SecretStr | None = None
    dimensions: int | None = Field(default=None, ge=1, le=8192)
    timeout_seconds: float = Field(default=30.0, gt=0)
    #: Set for a base URL saved from the dashboard: every request checks its host is public.
    check_outbound: bool = Field(default=False, exclude=True)


class LLMSettings(BaseSettings):
    """The extractor and its LLM (env prefix `OPENMEMORY_LLM_`): any OpenAI-compatible API."""

    model_config = SettingsConfigDict(env_prefix="OPENMEMORY_LLM_", extra="ignore")

    extractor: str = Field(default="local", pattern="^(local|llm)$")
    base_url: str | None = Field(default=None, description="e.g. http://localhost:11434/v1 for Ollama")
    api_key: SecretStr | None = None
    model: str = "gpt-4o-mini"
    timeout_seconds: float = Field(default=30.0, gt=0)
    malformed_retries: int = Field(default=2, ge=0, le=5)
    similar_memories: int = Field(default=5, ge=1, le=20)
    custom_instructions: str = Field(default="", max_length=4000)
    #: Set for a base URL saved from the dashboard: every request checks its host is public.
    check_outbound: bool = Field(default=False, exclude=True)
    daily_tokens_per_user: int | None = Field(
        default=None,
        ge=0,
        description="LLM tokens each user may spend per UTC day; past it, ingest extracts locally "
        "(0 or unset: no limit)",
    )
    daily_tokens_total: int | None = Field(
        default=None,
        ge=0,
        description="LLM tokens all users together may spend per UTC day (0 or unset: no limit)",
    )
    price_prompt_per_million: float = Field(
        default=0.0, ge=0, description="US dollars per 1M prompt tokens (0: unknown, no cost counted)"
    )
    price_completion_per_million: float = Field(
        default=0.0, ge=0, description="US dollars per 1M completion tokens (0: unknown, no cost counted)"
    )


class GatewaySettings(BaseSettings):
    """The MCP gateway (env prefix `OPENMEMORY_GATEWAY_`)."""

    model_config = SettingsConfigDict(env_prefix="OPENMEMORY_GATEWAY_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8765
    add_wait_seconds: float = Field(default=5.0, ge=0, le=60)
    query_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    max_text_chars: int = Field(default=MAX_TEXT_CHARS, ge=1)
    rate_limit_per_minute: int | None = Field(
        default=None,
        ge=1,
        description="MCP requests per minute per API key; unset: 600, or 6000 when the gateway "
        "listens on loopback only (one local client adding and searching as fast as it can)",
    )
    max_answer_chars: int = Field(
        default=20_000, ge=200, description="Longest MCP tool answer (JSON characters); longer lists are cut"
    )
    max_request_bytes: int = Field(default=1_048_576, ge=1024, description="Largest MCP request body")
    max_backlog: int = Field(
        default=10_000,
        ge=1,
        description="Commands waiting in one partition before writes are refused (retryable)",
    )
    allowed_hosts: list[str] = Field(
        default_factory=lambda: ["127.0.0.1:*", "localhost:*", "[::1]:*"],
        description="Host headers the MCP endpoint accepts (DNS-rebinding protection)",
    )
    allowed_origins: list[str] = Field(
        default_factory=lambda: ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]
    )
    auth_failures_per_minute: int = Field(
        default=20, ge=0, description="bad API keys per client address and minute before 429 (0: off)"
    )
    record_cache_seconds: float = Field(
        default=30.0,
        ge=0,
        le=300,
        description="how long key and app records are kept in memory (every change clears them at "
        "once, on every gateway); 0: read them from NATS on every call",
    )
    public_url: str | None = Field(
        default=None,
        description="the MCP URL clients use (e.g. https://memory.example.com/mcp): shown by the "
        "dashboard, the OAuth resource, and its host is allowed",
    )

    @field_validator("public_url")
    @classmethod
    def _valid_public_url(cls, value: str | None) -> str | None:
        return _public_url(value)

    @property
    def per_key_limit(self) -> int:
        """MCP requests per minute per API key: the setting when set, else a default that depends
        on whether anyone but this machine can reach the gateway."""
        if self.rate_limit_per_minute is not None:
            return self.rate_limit_per_minute
        return LOOPBACK_RATE_LIMIT if self.host in LOOPBACK_HOSTS else DEFAULT_RATE_LIMIT

    @property
    def mcp_url(self) -> str:
        """The MCP URL to give clients: the public one, else this host and port (loopback when the
        gateway listens on every address: 0.0.0.0 is no address to connect to)."""
        if self.public_url:
            return self.public_url
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}/mcp"

    @model_validator(mode="after")
    def _allow_public_url(self) -> GatewaySettings:
        _allow_public(self.public_url, self.allowed_hosts, self.allowed_origins)
        return self


class OAuthSettings(BaseSettings):
    """OAuth for MCP clients that speak it (env prefix `OPENMEMORY_OAUTH_`); off unless `issuer_url`
    is set. Bearer tokens that are not OpenMemory API keys are checked by the authorization server's
    token introspection endpoint (RFC 7662); API keys keep working beside them."""

    model_config = SettingsConfigDict(env_prefix="OPENMEMORY_OAUTH_", extra="ignore")

    issuer_url: str | None = Field(default=None, description="the authorization server clients sign in with")
    introspection_url: str | None = None
    client_id: str | None = Field(default=None, description="this resource server's credentials at the AS")
    client_secret: SecretStr | None = None
    resource_url: str | None = Field(default=None, description="the public MCP URL (default: from host/port)")
    default_scopes: list[str] = Field(
        default_factory=lambda: ["read", "write"],
        description="granted when a token carries none of read, write (or openmemory:read, openmemory:write)",
    )
    timeout_seconds: float = Field(default=5.0, gt=0)

    @property
    def enabled(self) -> bool:
        return bool(self.issuer_url)


class AdminSettings(BaseSettings):
    """The admin service and dashboard (env prefix `OPENMEMORY_ADMIN_`)."""

    model_config = SettingsConfigDict(env_prefix="OPENMEMORY_ADMIN_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 3000
    rate_limit_per_minute: int = Field(
        default=600, ge=1, description="API requests per minute per key/session"
    )
    auth_failures_per_minute: int = Field(
        default=20,
        ge=0,
        description="Failed sign-ins and bad API keys per minute per client address before it is "
        "refused (429) until the next minute; 0 turns the throttle off",
    )
    allowed_hosts: list[str] = Field(
        default_factory=lambda: ["127.0.0.1:*", "localhost:*", "[::1]:*"],
        description="Host headers the dashboard and its API answer (DNS-rebinding protection); others "
        "get 421. `name:*` allows any port",
    )
    allowed_origins: list[str] = Field(
        default_factory=list,
        description="origins besides the dashboard's own whose signed-in writes are accepted",
    )
    public_url: str | None = Field(
        default=None, description="the dashboard's URL as people open it (e.g. https://memory.example.com)"
    )

    @field_validator("public_url")
    @classmethod
    def _valid_public_url(cls, value: str | None) -> str | None:
        return _public_url(value)

    @model_validator(mode="after")
    def _allow_public_url(self) -> AdminSettings:
        _allow_public(self.public_url, self.allowed_hosts, self.allowed_origins)
        return self


class WebhookSettings(BaseSettings):
    """Webhooks: registration limits and delivery (env prefix `OPENMEMORY_WEBHOOKS_`). The admin
    component delivers them."""

    model_config = SettingsConfigDict(env_prefix="OPENMEMORY_WEBHOOKS_", extra="ignore")

    enabled: bool = Field(default=True, description="deliver webhooks from this process's admin component")
    allow_private: bool = Field(
        default=False,
        description="let webhooks target loopback, private and link-local addresses, and plain http:// "
        "(tests, a receiver on the same machine); otherwise https:// to public addresses only",
    )
    max_per_user: int = Field(default=10, ge=1, le=100)
    max_url_chars: int = Field(default=2048, ge=64, le=8192)
    timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    max_attempts: int = Field(default=10, ge=1, le=100, description="attempts before a dead letter")
    backoff_base_seconds: float = Field(default=5.0, gt=0, description="wait after the first failure")
    backoff_max_seconds: float = Field(default=900.0, gt=0, description="longest wait between attempts")
    concurrency: int = Field(default=16, ge=1, le=256, description="deliveries in flight per process")
    refresh_seconds: float = Field(
        default=2.0, gt=0, le=60, description="how often registrations are re-read"
    )


class IngestSettings(BaseSettings):
    """The ingest worker (env prefix `OPENMEMORY_INGEST_`)."""

    model_config = SettingsConfigDict(env_prefix="OPENMEMORY_INGEST_", extra="ignore")

    ack_wait_seconds: float = Field(default=60.0, gt=0)
    max_deliver: int = Field(default=5, ge=1)
    retry_backoff_seconds: float = Field(default=1.0, ge=0)
    max_backoff_seconds: float = Field(default=30.0, gt=0)
    #: While a store is down a command waits, retried every max_backoff_seconds at most, this many
    #: times (about an hour by default) before it is set aside in the dead letters.
    store_down_max_deliver: int = Field(default=130, ge=1)
    gauge_interval_seconds: float = Field(default=5.0, gt=0)
    settings_cache_seconds: float = Field(
        default=30.0,
        ge=0,
        le=300,
        description="how long a user's review setting is kept in memory for adds (every change clears "
        "it at once, on every worker); 0: read it from NATS on every add",
    )
    #: Consolidation (README "Trust"): merge near-duplicates, archive expired temporary memories.
    #: Hours between runs over every user (0: never; `openmemory consolidate` runs it by hand).
    consolidate_interval_hours: float = Field(default=24.0, ge=0)
    #: Whether the periodic run merges near-duplicates too (README "Consolidation": off, since a
    #: merge archives what the user said on a judgement; by hand, `openmemory consolidate` merges).
    consolidate_periodic_merge: bool = False
    #: The newest active memories read per user and run: the work of a run is bounded by it.
    consolidate_max_memories: int = Field(default=5000, ge=1, le=50_000)
    #: Users consolidated per periodic run (the ones with the newest changes are not preferred: the
    #: run walks the users it finds, and the next run goes on).
    consolidate_max_users: int = Field(default=1000, ge=1)
    #: Nearest neighbours (vector search) compared with each memory: no all-pairs comparison.
    consolidate_neighbours: int = Field(default=8, ge=1, le=50)
    #: Days a memory added with metadata `temporary: true` (and no `expires_at`) lives.
    temporary_days: float = Field(default=7.0, gt=0)


class SearchSettings(BaseSettings):
    """The search service (env prefix `OPENMEMORY_SEARCH_`)."""

    model_config = SettingsConfigDict(env_prefix="OPENMEMORY_SEARCH_", extra="ignore")

    candidates: int = Field(default=50, ge=1, le=1000)
    rerank_top: int = Field(
        default=20,
        ge=0,
        le=50,
        description="over conversation turns, how many of the best a cross-encoder reads again with "
        "the question (about 4 ms each on two cores, up to about 25 ms for the longest); 0 (or 1) "
        "leaves the step out",
    )


class OpsSettings(BaseSettings):
    """Health and metrics for processes that serve no other HTTP (env prefix `OPENMEMORY_OPS_`)."""

    model_config = SettingsConfigDict(env_prefix="OPENMEMORY_OPS_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8766
    separate: bool = Field(
        default=False,
        description="serve /readyz and /metrics only here, and only /healthz on the public ports "
        "(set by the chart; a process with no public port always has this one)",
    )


class Settings(BaseSettings):
    """The root: every service's settings, for `--target all` or any split."""

    model_config = SettingsConfigDict(env_prefix="OPENMEMORY_ROOT_", extra="ignore")

    core: CoreSettings = Field(default_factory=CoreSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    embedder: EmbedderSettings = Field(default_factory=EmbedderSettings)
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)
    admin: AdminSettings = Field(default_factory=AdminSettings)
    oauth: OAuthSettings = Field(default_factory=OAuthSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    search: SearchSettings = Field(default_factory=SearchSettings)
    ops: OpsSettings = Field(default_factory=OpsSettings)
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
