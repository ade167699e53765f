"""Webhook registrations: the record, where it may point, who may see it, and its KV bucket.

A registration belongs to the user whose `admin` key made it and receives that user's events; one
made by an `operator` key with `all_users` receives every user's. Each lives in `om_webhooks` under
a slot key, `<sha256(owner)[:32]>.<n>` (`all.<n>` for every user's), n < `max_per_user`: taking a
slot is a KV `create`, which fails when the slot is taken, so two registrations racing cannot
exceed the bound. The signing secret is made here, shown once, and stored sealed
(`openmemory_core.sealed`, bound to the registration's id).
"""

from __future__ import annotations

import secrets
from datetime import datetime
from urllib.parse import urlsplit

import nats.errors
import nats.js.errors
from pydantic import BaseModel, Field

from openmemory_core import contracts as c
from openmemory_core.errors import InvalidInput, NotFound, Unavailable
from openmemory_core.kv import Bucket, kv_entries, kv_value
from openmemory_core.outbound import PrivateAddressRefused, check_host, parse_url
from openmemory_core.sealed import Sealer
from openmemory_core.settings import WebhookSettings

ALL_USERS_SLOT_PREFIX = "all"
ID_PATTERN = r"^[0-9a-f]{16}$"
PRIVATE_REFUSED = (
    "the webhook URL is, or resolves to, a loopback, private or link-local address: refused, so that "
    "the server cannot be made to reach its own network; an operator can allow it with "
    "OPENMEMORY_WEBHOOKS_ALLOW_PRIVATE"
)


class WebhookRecord(BaseModel):
    """One registration as stored (the secret sealed)."""

    id: str = Field(pattern=ID_PATTERN)
    owner: str  # the user whose admin key registered it
    all_users: bool = False  # an operator's registration for every user's events
    url: str
    kinds: list[c.ChangeKind] = Field(default_factory=list)  # empty: every kind
    sealed_secret: str
    created_at: datetime
    enabled: bool = True
    start_sequence: int = Field(ge=1)  # the first OM_EVENTS sequence it receives
    slot: str

    @property
    def filter_subject(self) -> str:
        return f"{c.EVENTS_SUBJECT_PREFIX}.>" if self.all_users else c.event_subject(self.owner)

    def wants(self, change: c.ChangeKind) -> bool:
        return not self.kinds or change in self.kinds

    def visible_to(self, principal: c.Principal) -> bool:
        """The one access rule: a user's own registration needs that user's `admin` key; one for
        every user needs an `operator` key."""
        if self.all_users:
            return principal.can(c.OPERATOR_SCOPE)
        return self.owner == principal.user_id and principal.can("admin")


def secret_context(registration_id: str) -> str:
    """What a secret is sealed to: it opens for this registration only."""
    return f"webhook|{registration_id}"


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def new_id() -> str:
    return secrets.token_hex(8)


async def checked_target(url: str, settings: WebhookSettings) -> str:
    """The URL if a webhook may point there: bounded, http(s) without credentials, https unless
    private targets are allowed, and (unless allowed) not a loopback, private or link-local host.
    The same host check runs again before every delivery: a name can resolve differently later."""
    url = url.strip()
    if not url or len(url) > settings.max_url_chars:
        raise InvalidInput(f"the webhook URL must be 1 to {settings.max_url_chars} characters")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise InvalidInput("the webhook URL must not contain spaces or control characters")
    host, port = parse_url(url)
    if urlsplit(url).scheme != "https" and not settings.allow_private:
        raise InvalidInput("the webhook URL must be https://")
    if not settings.allow_private:
        try:
            await check_host(host, port)
        except PrivateAddressRefused as exc:
            raise PrivateAddressRefused(PRIVATE_REFUSED) from exc
        except ValueError as exc:  # a host name the resolver cannot even encode (IDNA)
            raise InvalidInput("the webhook URL's host name is not valid") from exc
    return url


class WebhookRegistry:
    """The registrations in KV, and their secrets."""

    def __init__(self, bucket: Bucket, settings: WebhookSettings, sealer: Sealer) -> None:
        self.bucket = bucket
        self.settings = settings
        self.sealer = sealer

    def _prefix(self, owner: str, all_users: bool) -> str:
        return ALL_USERS_SLOT_PREFIX if all_users else c.subject_token(owner)

    async def _records(self, prefix: str) -> list[WebhookRecord]:
        try:
            entries = await kv_entries(self.bucket, prefix)
        except (nats.errors.Error, nats.js.errors.Error, TimeoutError) as exc:
            raise Unavailable("the bus (NATS) is not reachable just now; retry shortly") from exc
        return [WebhookRecord.model_validate_json(value) for _, value in entries]

    async def every(self) -> list[WebhookRecord]:
        """Every registration (the dispatcher's view)."""
        return await self._records("")

    async def of(self, principal: c.Principal) -> list[WebhookRecord]:
        """The registrations the caller may see: its user's, and every user's for an operator."""
        found = await self._records(f"{c.subject_token(principal.user_id)}.")
        if principal.can(c.OPERATOR_SCOPE):
            found += await self._records(f"{ALL_USERS_SLOT_PREFIX}.")
        return sorted((r for r in found if r.visible_to(principal)), key=lambda r: r.created_at)

    async def get(self, principal: c.Principal, registration_id: str) -> WebhookRecord:
        """One registration the caller may see; another user's is "not found", like a missing one."""
        for record in await self.of(principal):
            if record.id == registration_id:
                return record
        raise NotFound(f"no webhook {registration_id!r} for this user")

    async def add(
        self, owner: str, url: str, kinds: list[c.ChangeKind], all_users: bool, start_sequence: int
    ) -> tuple[WebhookRecord, str]:
        """Store a new registration in a free slot; returns it with its secret (shown once)."""
        prefix = self._prefix(owner, all_users)
        taken = {r.slot for r in await self._records(f"{prefix}.")}
        secret, registration_id = new_secret(), new_id()
        for n in range(self.settings.max_per_user):
            slot = f"{prefix}.{n}"
            if slot in taken:
                continue
            record = WebhookRecord(
                id=registration_id, owner=owner, all_users=all_users, url=url, kinds=sorted(set(kinds)),
                sealed_secret=self.sealer.seal(secret, secret_context(registration_id)),
                created_at=c.now(), start_sequence=start_sequence, slot=slot,
            )  # fmt: skip
            try:
                await self.bucket.create(slot, record.model_dump_json().encode())
            except nats.js.errors.KeyWrongLastSequenceError:
                continue  # taken meanwhile by a registration racing this one
            except (nats.errors.Error, nats.js.errors.Error, TimeoutError) as exc:
                raise Unavailable("the bus (NATS) is not reachable just now; retry shortly") from exc
            return record, secret
        whose = "for every user" if all_users else "per user"
        raise InvalidInput(f"at most {self.settings.max_per_user} webhooks {whose}: delete one first")

    async def still(self, record: WebhookRecord) -> bool:
        """Whether this registration is still stored and enabled (not removed, paused or replaced)."""
        value, _ = await kv_value(self.bucket, record.slot)
        if value is None:
            return False
        current = WebhookRecord.model_validate_json(value)
        return current.id == record.id and current.enabled

    async def save(self, record: WebhookRecord) -> None:
        await self.bucket.put(record.slot, record.model_dump_json().encode())

    async def remove(self, record: WebhookRecord) -> None:
        await self.bucket.delete(record.slot)

    def secret_of(self, record: WebhookRecord) -> str | None:
        """The signing secret, or None when it cannot be opened (another secrets key)."""
        return self.sealer.open(record.sealed_secret, secret_context(record.id))
