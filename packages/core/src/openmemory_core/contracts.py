"""Every subject, stream, consumer, bucket and message model, defined once.

No service spells a subject string itself: it calls a function or reads a constant here.
"""

from __future__ import annotations

import hashlib
import re
import uuid
import zlib
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
)

# ---- streams, subjects, consumers, buckets -------------------------------------------------

COMMANDS_STREAM = "OM_COMMANDS"
COMMANDS_SUBJECT_PREFIX = "om.cmd"
EVENTS_STREAM = "OM_EVENTS"
EVENTS_SUBJECT_PREFIX = "om.evt"
DEAD_LETTER_STREAM = "OM_DEAD_LETTERS"
DEAD_LETTER_SUBJECT = "om.dlq"
RESULT_SUBJECT_PREFIX = "om.result"
QUERY_SUBJECT_PREFIX = "om.query"
SEARCH_QUEUE_GROUP = "om-search"
INGEST_DURABLE_PREFIX = "ingest-p"
KEYS_BUCKET = "om_api_keys"
APPS_BUCKET = "om_apps"
SETTINGS_BUCKET = "om_settings"
#: Dashboard sessions' records in the settings bucket (`session.<key id>.<session id>`): they belong
#: to a running system, so backups leave them out.
SESSION_KEY_PREFIX = "session."
RATE_BUCKET = "om_rate_limits"  # per key and minute: how many requests every replica served
#: How each accepted command ended, by request id, kept a day: `get_request` and MCP tasks read it.
REQUESTS_BUCKET = "om_requests"
REQUEST_RECORD_TTL_SECONDS = 24 * 3600
#: LLM tokens spent per user and UTC day, and by everyone (`openmemory_core.llm_usage`), kept two days.
LLM_USAGE_BUCKET = "om_llm_usage"
ACCESS_STREAM = "OM_ACCESS"
ACCESS_SUBJECT_PREFIX = "om.access"
#: Consolidation (merging near-duplicates, archiving expired memories): request/reply to ingest,
#: which plans where the vector store is and applies the plan as a `ConsolidateCommand`.
CONSOLIDATE_SUBJECT = "om.consolidate"
INGEST_QUEUE_GROUP = "om-ingest"
#: Webhook registrations (`openmemory_admin.webhooks`), key `<sha256(owner)[:32]>.<id>` (or
#: `all.<id>` for an operator's registration for every user).
WEBHOOKS_BUCKET = "om_webhooks"
#: One durable consumer on OM_EVENTS per registration: its own place in the stream and its own retries.
WEBHOOK_DURABLE_PREFIX = "webhook-"
#: Deliveries that failed every attempt, on `om.webhook.failed.<registration id>`.
WEBHOOK_FAILURES_STREAM = "OM_WEBHOOK_FAILURES"
WEBHOOK_FAILURES_SUBJECT_PREFIX = "om.webhook.failed"

#: Commands are partitioned by user so that one user's commands are applied in order:
#: each partition has one durable consumer with at most one command in flight.
DEFAULT_PARTITIONS = 8


def partition_of(user_id: str, partitions: int) -> int:
    """The partition a user's commands go to; stable across processes and restarts."""
    return zlib.crc32(user_id.encode()) % partitions


def command_subject(user_id: str, partitions: int) -> str:
    return f"{COMMANDS_SUBJECT_PREFIX}.{partition_of(user_id, partitions)}"


def partition_subject(partition: int) -> str:
    return f"{COMMANDS_SUBJECT_PREFIX}.{partition}"


def ingest_durable(partition: int) -> str:
    return f"{INGEST_DURABLE_PREFIX}{partition}"


def event_subject(user_id: str) -> str:
    # The user id is hashed so that any user id (dots, spaces) makes a valid subject token.
    return f"{EVENTS_SUBJECT_PREFIX}.{subject_token(user_id)}"


def webhook_durable(registration_id: str) -> str:
    return f"{WEBHOOK_DURABLE_PREFIX}{registration_id}"


def webhook_failure_subject(registration_id: str) -> str:
    return f"{WEBHOOK_FAILURES_SUBJECT_PREFIX}.{registration_id}"


def access_subject(user_id: str) -> str:
    return f"{ACCESS_SUBJECT_PREFIX}.{subject_token(user_id)}"


def app_key(user_id: str, app: str) -> str:
    """The KV key of one user's settings for one app."""
    return f"{subject_token(user_id)}.{subject_token(app)}"


def result_subject(request_id: str) -> str:
    return f"{RESULT_SUBJECT_PREFIX}.{request_id}"


def subject_token(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:32]


class Query(StrEnum):
    """Read-side operations answered by search over NATS request/reply."""

    SEARCH = "search"
    LIST = "list"
    GET = "get"
    HISTORY = "history"
    GRAPH = "graph"
    BROWSE = "browse"
    STATS = "stats"
    USER_GRAPH = "user_graph"
    PROFILE = "profile"

    @property
    def subject(self) -> str:
        return f"{QUERY_SUBJECT_PREFIX}.{self.value}"


# ---- limits ----------------------------------------------------------------------------------

MAX_TEXT_CHARS = 20_000
MAX_QUERY_CHARS = 2_000
MAX_IDS_PER_REQUEST = 1_000
#: A page cursor names a time and the ids shown at that time (one add makes at most a few hundred
#: memories at one time): far below this, which bounds what a forged cursor can make search decode.
MAX_CURSOR_CHARS = 32_768
ID_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$"
#: Scopes a key can have: read and write memories, administer its own user, operate the system.
SCOPES = ("read", "write", "admin", "operator")
OPERATOR_SCOPE = "operator"


def now() -> datetime:
    return datetime.now(UTC)


def new_request_id() -> str:
    return uuid.uuid4().hex


def content_hash(user_id: str, text: str) -> str:
    """Exact-duplicate key: one user's normalised text."""
    normalised = " ".join(text.split()).casefold()
    return hashlib.sha256(f"{user_id}\x00{normalised}".encode()).hexdigest()


#: A memory id already in its canonical spelling (as every stored id is): no UUID to parse.
_CANONICAL_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def is_memory_id(value: str) -> bool:
    """Whether a value has the shape of a memory id (a UUID, in any of its spellings)."""
    try:
        canonical_id(value)
    except ValueError:
        return False
    return True


def canonical_id(value: str) -> str:
    """The one spelling of a memory id: lower-case, hyphenated. `250DB615-…`, `{…}`, `urn:uuid:…` and
    the bare hex are one id to the stores, so every comparison and store call uses this form; a
    ValueError for anything that is not a UUID."""
    if isinstance(value, str) and _CANONICAL_ID.fullmatch(value):
        return value  # the form `str(uuid.UUID(value))` gives; a search reads ~100 of them
    try:
        return str(uuid.UUID(value))
    except (ValueError, AttributeError, TypeError) as exc:
        raise ValueError(f"not a memory id: {value!r}") from exc


def canonical_ids(values: list[str]) -> list[str]:
    """Several ids in their canonical form, each once, in order; InvalidInput naming the bad ones."""
    from openmemory_core.errors import InvalidInput

    malformed = [v for v in values if not is_memory_id(v)]
    if malformed:
        what = "not a memory id" if len(values) == 1 else "not memory ids"
        raise InvalidInput(f"{what}: {', '.join(map(repr, malformed[:10]))}")
    return list(dict.fromkeys(canonical_id(v) for v in values))


def _canonical_if_id(value: Any) -> Any:
    """Canonical when it is a UUID; left as it is otherwise (a lookup then finds nothing). One call
    of `canonical_id`, whose shortcut takes a stored id's spelling in one match."""
    if not isinstance(value, str):
        return value
    try:
        return canonical_id(value)
    except ValueError:
        return value


#: A user or app name as the API takes it (pydantic's `$` is the end of the text: no trailing newline).
AppName = Annotated[str, Field(pattern=ID_NAME_PATTERN)]
#: A memory id a command acts on: refused unless it is a UUID, stored in its canonical form.
MemoryId = Annotated[str, AfterValidator(canonical_id)]
#: A memory id that is looked up or carried along: canonical when it is a UUID at all.
MemoryRef = Annotated[str, BeforeValidator(_canonical_if_id)]


def memory_id_for(request_id: str, index: int) -> str:
    """A memory id derived from its command, so a redelivered command writes the same point."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"openmemory:{request_id}:{index}"))


# ---- the memory record -----------------------------------------------------------------------


class MemoryState(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    ARCHIVED = "archived"
    DELETED = "deleted"
    PENDING = "pending"  # held for review: it reads as an instruction to an assistant (README, "Trust")


class Relation(BaseModel):
    """A relation a memory states, between two entity names ("User" is the user)."""

    model_config = ConfigDict(frozen=True)

    subject: str
    type: str
    object: str


class Memory(BaseModel):
    """One memory as stored (the Qdrant payload) and as returned to clients."""

    id: MemoryRef
    user_id: str
    app: str
    text: str
    state: MemoryState = MemoryState.ACTIVE
    categories: list[str] = Field(default_factory=list)
    entities: list[str] = Field(default_factory=list)
    entity_kinds: dict[str, str] = Field(default_factory=dict)
    relations: list[Relation] = Field(default_factory=list)
    created_at: datetime
    updated_at: datetime
    occurred_at: datetime | None = None
    superseded_by: MemoryRef | None = None  # the memory whose fact replaced this one's (e.g. a move)
    # For a memory kept verbatim: the one the same app added just before it in the same conversation,
    # and its text; an answer ("A sunset.") is found by the words of its question ("What did you paint?").
    previous: MemoryRef | None = None
    context: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    content_hash: str
    request_id: str

    @property
    def when(self) -> datetime:
        """The time the memory is about: when it happened, if that was told; else when it was added."""
        return self.occurred_at or self.created_at


class AppRecord(BaseModel):
    """One user's access settings for one app (MCP client): enforced by gateway and search."""

    user_id: str
    app: str
    paused: bool = False
    can_read: bool = True
    can_write: bool = True
    updated_at: datetime = Field(default_factory=lambda: now())

    def allows(self, scope: str) -> bool:
        if self.paused:
            return False
        return {"read": self.can_read, "write": self.can_write}.get(scope, True)


class AccessRecord(BaseModel):
    """Which memories an app was shown, and why: the access log."""

    user_id: str
    app: str
    kind: Literal["search", "get", "list"]
    query: str | None = None
    memory_ids: list[MemoryRef]
    at: datetime = Field(default_factory=lambda: now())


class Principal(BaseModel):
    """Who is asking: decided by the API key, never by a URL."""

    model_config = ConfigDict(frozen=True)

    user_id: str
    app: str
    key_id: str
    scopes: tuple[str, ...] = ("read", "write")

    def can(self, scope: str) -> bool:
        """`admin` (the user's own administration) includes reading and writing; `operator` (the
        system's settings, shared by every user) is never implied: only a key that names it has it."""
        if scope == OPERATOR_SCOPE:
            return OPERATOR_SCOPE in self.scopes
        return scope in self.scopes or "admin" in self.scopes


# ---- commands (JetStream, durable) -----------------------------------------------------------


class CommandBase(BaseModel):
    request_id: str = Field(default_factory=new_request_id)
    user_id: str
    app: str
    issued_at: datetime = Field(default_factory=now)


class AddCommand(CommandBase):
    kind: Literal["add"] = "add"
    text: str
    infer: bool = True
    metadata: dict[str, Any] = Field(default_factory=dict)
    occurred_at: datetime | None = None


class DeleteCommand(CommandBase):
    kind: Literal["delete"] = "delete"
    memory_ids: list[MemoryId]


class DeleteAllCommand(CommandBase):
    kind: Literal["delete_all"] = "delete_all"


SYSTEM_USER = "_system"


class ReembedCommand(CommandBase):
    """Copy every memory of the collection of another embedding model into the current one."""

    kind: Literal["reembed"] = "reembed"
    user_id: str = SYSTEM_USER
    app: str = "cli"
    from_model_tag: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]{0,120}$")


class RebuildCommand(CommandBase):
    """Recreate every user's vectors and graph from the events stream (after a restore, or a loss)."""

    kind: Literal["rebuild"] = "rebuild"
    user_id: str = SYSTEM_USER
    app: str = "cli"


class EditCommand(CommandBase):
    """Replace a memory's text by hand: re-extracted, re-embedded and re-linked in the graph."""

    kind: Literal["edit"] = "edit"
    memory_id: MemoryId
    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)


class SetStateCommand(CommandBase):
    """Pause, archive or make active again: only active memories are searched."""

    kind: Literal["set_state"] = "set_state"
    memory_ids: list[MemoryId] = Field(min_length=1, max_length=MAX_IDS_PER_REQUEST)
    state: Literal[MemoryState.ACTIVE, MemoryState.PAUSED, MemoryState.ARCHIVED]


#: How many held changes one review decision may name.
MAX_REVIEW_IDS = 500


class ReviewCommand(CommandBase):
    """The user's decision on changes held for review (`pending`): approve applies each (a new
    memory becomes active; a held update or deletion is applied to the memory it names), reject
    deletes it and leaves the stored memory as it was."""

    kind: Literal["review"] = "review"
    memory_ids: list[MemoryId] = Field(min_length=1, max_length=MAX_REVIEW_IDS)
    decision: Literal["approve", "reject"]


class ImportedMemory(BaseModel):
    """One memory of an export, ours or OpenMemory's, as ingest takes it in."""

    id: Annotated[MemoryRef, Field(max_length=200)] | None = None
    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    app: AppName = "import"
    state: MemoryState = MemoryState.ACTIVE
    categories: list[Annotated[str, Field(min_length=1, max_length=100)]] | None = Field(
        default=None, max_length=50
    )
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    occurred_at: datetime | None = None
    previous: Annotated[MemoryRef, Field(max_length=200)] | None = None  # the turn before, by its export id
    context: str | None = Field(default=None, max_length=MAX_TEXT_CHARS)


MAX_IMPORT_BATCH = 100


class ImportCommand(CommandBase):
    """A batch of exported memories, kept verbatim (no inference), with their ids where free."""

    kind: Literal["import"] = "import"
    memories: list[ImportedMemory] = Field(min_length=1, max_length=MAX_IMPORT_BATCH)


class MergeAction(BaseModel):
    """Near-duplicates to fold into one memory: `merged` are archived, marked merged into `keep`."""

    keep: MemoryId
    merged: list[MemoryId] = Field(min_length=1, max_length=50)
    similarity: float = Field(ge=-1.0, le=1.0)  # the lowest cosine between two memories of the group


class ExpiryAction(BaseModel):
    """A temporary memory whose time is over: archived."""

    memory_id: MemoryId
    expired_at: datetime


MAX_CONSOLIDATION_ACTIONS = 1000
#: The metadata key that says why a memory was archived by consolidation ("merged into <id>",
#: "temporary: expired at …"); `get_memory`'s history shows it.
ARCHIVED_REASON = "archived_reason"


class ConsolidateCommand(CommandBase):
    """Apply a consolidation plan to one user's memories. Ingest checks each action again against
    the stores (the plan may be stale): only the user's own active memories are changed."""

    kind: Literal["consolidate"] = "consolidate"
    merges: list[MergeAction] = Field(default_factory=list, max_length=MAX_CONSOLIDATION_ACTIONS)
    expiries: list[ExpiryAction] = Field(default_factory=list, max_length=MAX_CONSOLIDATION_ACTIONS)


AnyCommand = (
    AddCommand
    | DeleteCommand
    | DeleteAllCommand
    | ReembedCommand
    | RebuildCommand
    | EditCommand
    | SetStateCommand
    | ImportCommand
    | ReviewCommand
    | ConsolidateCommand
)
Command = Annotated[AnyCommand, Field(discriminator="kind")]


class CommandEnvelope(BaseModel):
    command: Command


# ---- events (JetStream): one per change of a memory -------------------------------------------


class ChangeKind(StrEnum):
    ADD = "ADD"
    UPDATE = "UPDATE"
    DELETE = "DELETE"
    NONE = "NONE"


class MemoryEvent(BaseModel):
    event_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    request_id: str
    user_id: str
    app: str
    memory_id: MemoryRef
    change: ChangeKind
    before: Memory | None = None
    after: Memory | None = None
    at: datetime = Field(default_factory=now)
    #: Why, when it is not the command's plain meaning: a review decision ("approved in review by
    #: app 'dashboard'; it was held because …").
    reason: str | None = None


class ChangeSummary(BaseModel):
    """What a command did to one memory, as the MCP client sees it."""

    id: str
    memory: str
    event: ChangeKind
    state: MemoryState | None = None  # given only when the memory is not active: "pending"
    note: str | None = None  # why, for the client's model ("pending review: …")

    @model_serializer(mode="wrap")
    def _without_unset(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """An ordinary change shows only id, memory and event."""
        dumped: dict[str, Any] = handler(self)
        return {k: v for k, v in dumped.items() if v is not None or k not in ("state", "note")}


class CommandResult(BaseModel):
    """Published by ingest on the request's result subject once a command is fully applied."""

    request_id: str
    ok: bool
    results: list[ChangeSummary] = Field(default_factory=list)
    error: str | None = None
    note: str | None = None


class RequestRecord(BaseModel):
    """A command's standing, kept under its request id: `pending` once the gateway answered
    "accepted", then how ingest ended it (`applied`, or `failed` when it was parked)."""

    user_id: str
    kind: str
    status: Literal["pending", "applied", "failed"]
    at: datetime
    result: CommandResult | None = None


class DeadLetter(BaseModel):
    request_id: str
    subject: str
    error: str
    payload: str
    command_sequence: int | None = None  # the command's place in its stream: one letter per delivery run
    at: datetime = Field(default_factory=now)


# ---- queries (NATS request/reply to search) -----------------------------------------------------


class SearchFilters(BaseModel):
    """Narrow a search: by the app that added a memory, its categories, the time it refers to."""

    app: str | None = None
    categories: list[str] = Field(default_factory=list)
    since: datetime | None = None
    until: datetime | None = None

    def admits(self, memory: Memory) -> bool:
        when = memory.when.timestamp()
        return (
            (self.app is None or memory.app == self.app)
            and (not self.categories or bool(set(self.categories) & set(memory.categories)))
            and (self.since is None or when >= self.since.timestamp())
            and (self.until is None or when <= self.until.timestamp())
        )


class SearchRequest(BaseModel):
    user_id: str
    app: str | None = None  # the asking app: search re-checks its read permission
    query: str
    limit: int = Field(default=10, ge=1, le=100)
    filters: SearchFilters = Field(default_factory=SearchFilters)


class ListRequest(BaseModel):
    """One page of a user's active memories, newest first. `offset` is the opaque cursor a previous
    page answered as `next_offset` (search binds it to the user and refuses it for anyone else)."""

    user_id: str
    app: str | None = None
    limit: int = Field(default=100, ge=1, le=1000)
    offset: Annotated[str, Field(max_length=MAX_CURSOR_CHARS)] | None = None
    filters: SearchFilters | None = None  # only `app` and `categories` apply to a list


class GetRequest(BaseModel):
    user_id: str
    app: str | None = None
    memory_ids: list[MemoryRef]


class HistoryRequest(BaseModel):
    user_id: str
    memory_id: MemoryRef


class HistoryResponse(BaseModel):
    """A memory as it is now (None once deleted) and every change it went through, oldest first."""

    memory: Memory | None
    events: list[MemoryEvent]


class GraphRequest(BaseModel):
    user_id: str
    entity: str = Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")  # no control characters
    app: str | None = None  # the asking app: search re-checks its read permission
    limit: int | None = Field(default=None, ge=1, le=1000)  # at most this many edges, current ones first


class GraphEdge(BaseModel):
    relation: str
    direction: Literal["out", "in"]
    entity: str
    memory_id: str
    valid_from: str | None = None
    valid_to: str | None = None

    @property
    def current(self) -> bool:
        return self.valid_to is None


class GraphResponse(BaseModel):
    entity: str
    edges: list[GraphEdge]
    truncated: bool = False  # more edges than the request's limit


class ProfileRequest(BaseModel):
    """A short summary of the user from their current memories (`memory://profile`)."""

    user_id: str
    app: str | None = None


class ProfileSection(BaseModel):
    title: str  # "Who", "Where", "Work", "Preferences", "People", "Also", "Notes"
    lines: list[str]


class ProfileResponse(BaseModel):
    sections: list[ProfileSection]
    memory_ids: list[str]  # the memories the lines come from (the access log names them)
    read: int  # how many current memories were read (at most search's bound)
    truncated: bool = False  # facts were left out to keep the profile short


SORTS = ("created_desc", "created_asc", "updated_desc", "time_desc", "time_asc")


class BrowseRequest(BaseModel):
    """The dashboard's memory list: every state but deleted, filtered, sorted, one page at a time."""

    user_id: str
    text: str | None = Field(default=None, max_length=MAX_QUERY_CHARS)
    app: str | None = None
    category: str | None = None
    states: list[MemoryState] = Field(
        default_factory=lambda: [
            MemoryState.ACTIVE,
            MemoryState.PAUSED,
            MemoryState.ARCHIVED,
            MemoryState.PENDING,
        ]
    )
    since: datetime | None = None
    until: datetime | None = None
    sort: Literal["created_desc", "created_asc", "updated_desc", "time_desc", "time_asc"] = "created_desc"
    page: int = Field(default=1, ge=1)
    page_size: int = Field(default=25, ge=1, le=200)


class BrowseResponse(BaseModel):
    memories: list[Memory]
    total: int
    page: int
    page_size: int


class StatsRequest(BaseModel):
    user_id: str


class Count(BaseModel):
    name: str
    count: int


class StatsResponse(BaseModel):
    total: int
    by_state: dict[str, int]
    by_app: list[Count]
    by_category: list[Count]
    per_day: list[Count]  # name is the day (YYYY-MM-DD) the memory was created
    embedding_model: str = ""


class UserGraphRequest(BaseModel):
    user_id: str
    limit: int = Field(default=500, ge=1, le=5000)


class Triple(BaseModel):
    subject: str
    relation: str
    object: str
    memory_id: str
    valid_from: str | None = None
    valid_to: str | None = None


class UserGraphResponse(BaseModel):
    entities: list[str]
    relations: list[Triple]


class ScoredMemory(BaseModel):
    memory: Memory
    score: float
    signals: list[str] = Field(default_factory=list)
    note: str | None = None  # how to read it now, e.g. a plan whose date has passed (`text.plans`)


class SearchResponse(BaseModel):
    hits: list[ScoredMemory]
    missing_signals: list[str] = Field(default_factory=list)  # signals whose store was down


class ListResponse(BaseModel):
    memories: list[Memory]
    next_offset: str | None = None  # the cursor of the next page; None on the last one


class GetResponse(BaseModel):
    memories: list[Memory]
    missing: list[str] = Field(default_factory=list)


class Reply(BaseModel):
    """Envelope of every request/reply answer: a result, or an error code and message."""

    ok: bool
    result: dict[str, Any] | None = None
    error_code: str | None = None
    error: str | None = None


# ---- consolidation (request/reply to ingest) ---------------------------------------------------


class ConsolidateRequest(BaseModel):
    """Consolidate one user's memories (`openmemory consolidate`); `dry_run`: plan only; `merge`:
    False archives expired temporary memories only (the periodic run, unless merging is turned on)."""

    user_id: str = Field(min_length=1, max_length=200)
    dry_run: bool = False
    merge: bool = True
    wait: float = Field(default=120.0, gt=0, le=3600)  # how long ingest waits for its command's result


class PlannedMerge(BaseModel):
    keep: MemoryRef
    keep_text: str
    merged: list[MemoryRef]
    merged_texts: list[str]
    similarity: float


class PlannedExpiry(BaseModel):
    memory_id: MemoryRef
    text: str
    expired_at: datetime


class PastPlan(BaseModel):
    memory_id: MemoryRef
    text: str
    period: str  # search notes it at read time; nothing stored changes


#: A report lists at most this many past plans (it counts them all); texts in it are shortened.
REPORTED_PAST_PLANS = 200
REPORTED_TEXT_CHARS = 160


class ConsolidationReport(BaseModel):
    """What consolidation found for a user and, unless it was a dry run, what it changed."""

    user_id: str
    dry_run: bool
    merge: bool = True  # False: near-duplicates were not looked for
    memories: int  # active memories read
    truncated: bool = False  # the user has more than the per-run cap: the newest were read
    merges: list[PlannedMerge] = Field(default_factory=list)
    expiries: list[PlannedExpiry] = Field(default_factory=list)
    past_plans: list[PastPlan] = Field(default_factory=list)  # the first REPORTED_PAST_PLANS of them
    past_plan_count: int = 0
    request_id: str | None = None  # the ConsolidateCommand, when one was published
    applied: list[ChangeSummary] = Field(default_factory=list)  # what ingest changed (UPDATE events)
    pending: bool = False  # published, and not applied within the wait (it will be)
    seconds: float = 0.0


# ---- API keys (KV) -------------------------------------------------------------------------------

ANY_APP = "*"


class ApiKeyRecord(BaseModel):
    key_id: str
    prefix: str
    user_id: str
    app: str = ANY_APP
    scopes: list[str] = Field(default_factory=lambda: ["read", "write"])
    created_at: datetime = Field(default_factory=now)
    expires_at: datetime | None = None
    last_used_at: datetime | None = None
    revoked: bool = False
    label: str = ""
