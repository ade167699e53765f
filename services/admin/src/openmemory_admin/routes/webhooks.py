"""Webhooks: register HTTPS endpoints for the caller's memory events, list and remove them, and see,
retry or discard the deliveries that failed every attempt.

A user's `admin` key manages that user's webhooks (making one, or sending a failed delivery again,
hands out memories, so the app's `read` rule applies too); an `operator` key can also register one
for every user's events. Another user's webhook is "not found", like one that does not exist.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, ConfigDict, Field

from openmemory_admin.deps import AdminContext, Ctx, caller
from openmemory_admin.webhooks.delivery import (
    WebhookFailure,
    Webhooks,
    body_of,
    ensure_consumer,
    failure_at,
    failures_of,
    forget,
    next_event_sequence,
)
from openmemory_admin.webhooks.records import ID_PATTERN, WebhookRecord, checked_target
from openmemory_core import contracts as c
from openmemory_core.apps import authorize
from openmemory_core.errors import Forbidden, NotFound, Unavailable

router = APIRouter(tags=["webhooks"])

Caller = Annotated[c.Principal, Depends(caller)]
Kind = Literal["ADD", "UPDATE", "DELETE"]


async def webhooks(ctx: Ctx) -> Webhooks:
    """The registrations and the sender, opened on first use."""
    if ctx.webhooks is None:
        ctx.webhooks = await Webhooks.open(ctx.bus, ctx.settings)
    return ctx.webhooks


Hooks = Annotated[Webhooks, Depends(webhooks)]
RegistrationId = Annotated[str, Path(max_length=64)]
Sequence = Annotated[int, Path(ge=1, le=2**63 - 1)]


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=8192, description="https:// endpoint that receives the events")
    kinds: list[Kind] = Field(default_factory=list, max_length=3, description="empty: every kind")
    all_users: bool = Field(default=False, description="every user's events (operator keys only)")


class WebhookChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool


class WebhookView(BaseModel):
    id: str
    url: str
    kinds: list[str]
    all_users: bool
    enabled: bool
    created_at: datetime
    failures: int = 0  # deliveries set aside, waiting in /webhooks/failures


class CreatedWebhook(WebhookView):
    secret: str = Field(description="the signing secret: shown this once, store it now")


class FailureView(BaseModel):
    sequence: int
    webhook_id: str
    url: str
    event_id: str
    change: str
    memory_id: str
    user_id: str
    attempts: int
    error: str
    at: datetime
    event: str


def _manager(principal: c.Principal) -> None:
    if not (principal.can("admin") or principal.can(c.OPERATOR_SCOPE)):
        raise Forbidden("managing webhooks needs an API key with the admin (or operator) scope")


async def _may_send(ctx: AdminContext, principal: c.Principal, all_users: bool) -> None:
    """Registering a webhook or sending a delivery again hands out memories: for a user's own, the
    admin scope and the app's read rule; for every user's, the operator scope."""
    if all_users:
        await authorize(ctx.apps, principal, c.OPERATOR_SCOPE)
    else:
        await authorize(ctx.apps, principal, "admin", "read")


def _view(record: WebhookRecord, failures: int = 0) -> WebhookView:
    return WebhookView(
        id=record.id, url=record.url, kinds=[k.value for k in record.kinds], all_users=record.all_users,
        enabled=record.enabled, created_at=record.created_at, failures=failures,
    )  # fmt: skip


async def _failure_counts(ctx: AdminContext) -> dict[str, int]:
    info = await ctx.bus.js.stream_info(
        c.WEBHOOK_FAILURES_STREAM, subjects_filter=f"{c.WEBHOOK_FAILURES_SUBJECT_PREFIX}.>"
    )
    prefix = f"{c.WEBHOOK_FAILURES_SUBJECT_PREFIX}."
    return {subject.removeprefix(prefix): n for subject, n in (info.state.subjects or {}).items()}


async def _record(hooks: Webhooks, principal: c.Principal, registration_id: str) -> WebhookRecord:
    if not re.fullmatch(ID_PATTERN, registration_id):
        raise NotFound(f"no webhook {registration_id!r} for this user")
    return await hooks.registry.get(principal, registration_id)


@router.get("/webhooks")
async def list_webhooks(principal: Caller, ctx: Ctx, hooks: Hooks) -> list[WebhookView]:
    """The caller's webhooks (and, for an operator key, those for every user), oldest first."""
    _manager(principal)
    counts = await _failure_counts(ctx)
    return [_view(r, counts.get(r.id, 0)) for r in await hooks.registry.of(principal)]


@router.post("/webhooks", status_code=201)
async def register(body: WebhookIn, principal: Caller, ctx: Ctx, hooks: Hooks) -> CreatedWebhook:
    """Register an endpoint for the caller's memory events from now on. The answer holds the signing
    secret, shown this once."""
    await _may_send(ctx, principal, body.all_users)
    url = await checked_target(body.url, hooks.settings)
    start = await next_event_sequence(ctx.bus)
    kinds = [c.ChangeKind(k) for k in body.kinds]
    record, secret = await hooks.registry.add(principal.user_id, url, kinds, body.all_users, start)
    try:
        await ensure_consumer(ctx.bus.js, record, hooks.settings)
    except Exception as exc:
        await hooks.registry.remove(record)
        raise Unavailable("the webhook could not be set up on the bus; nothing was registered") from exc
    return CreatedWebhook(**_view(record).model_dump(), secret=secret)


@router.patch("/webhooks/{registration_id}")
async def change(
    registration_id: RegistrationId, body: WebhookChange, principal: Caller, ctx: Ctx, hooks: Hooks
) -> WebhookView:
    """Pause (`enabled: false`) or resume deliveries. Events that happen meanwhile wait and are
    delivered on resuming."""
    _manager(principal)
    record = await _record(hooks, principal, registration_id)
    if body.enabled:  # resuming hands out memories again
        await _may_send(ctx, principal, record.all_users)
    updated = record.model_copy(update={"enabled": body.enabled})
    await hooks.registry.save(updated)
    return _view(updated)


@router.delete("/webhooks/{registration_id}", status_code=204)
async def remove(registration_id: RegistrationId, principal: Caller, ctx: Ctx, hooks: Hooks) -> None:
    """Remove a webhook, its place in the events and its failed deliveries."""
    _manager(principal)
    record = await _record(hooks, principal, registration_id)
    await hooks.registry.remove(record)
    await forget(ctx.bus, record.id)


@router.get("/webhooks/failures")
async def failures(principal: Caller, ctx: Ctx, hooks: Hooks) -> list[FailureView]:
    """Deliveries that failed every attempt, for the webhooks the caller may see, oldest first."""
    _manager(principal)
    views = []
    for record in await hooks.registry.of(principal):
        for sequence, failure in await failures_of(ctx.bus, record):
            views.append(_failure_view(sequence, failure, record))
    return sorted(views, key=lambda v: v.sequence)


def _failure_view(sequence: int, failure: WebhookFailure, record: WebhookRecord) -> FailureView:
    return FailureView(
        sequence=sequence, webhook_id=record.id, url=record.url, event_id=failure.event_id,
        change=failure.change.value, memory_id=failure.memory_id, user_id=failure.user_id,
        attempts=failure.attempts, error=failure.error, at=failure.at, event=failure.event,
    )  # fmt: skip


async def _failure(
    ctx: AdminContext, hooks: Hooks, principal: c.Principal, sequence: int
) -> tuple[WebhookFailure, WebhookRecord]:
    failure = await failure_at(ctx.bus, sequence)
    if failure is None:
        raise NotFound(f"no failed delivery {sequence} for this user")
    try:
        record = await _record(hooks, principal, failure.registration_id)
    except NotFound:
        raise NotFound(f"no failed delivery {sequence} for this user") from None
    return failure, record


@router.post("/webhooks/failures/{sequence}/retry")
async def retry(sequence: Sequence, principal: Caller, ctx: Ctx, hooks: Hooks) -> dict[str, str]:
    """Send a failed delivery again now (one attempt, signed afresh). Delivered: it leaves the list;
    refused again: 503 with the reason, and it stays."""
    _manager(principal)
    failure, record = await _failure(ctx, hooks, principal, sequence)
    await _may_send(ctx, principal, record.all_users)
    body = body_of(record.id, failure.event.encode())
    error = await hooks.attempt(record, failure.event_id, body, failure.attempts + 1)
    if error is not None:
        raise Unavailable(f"the endpoint did not take the delivery ({error}); it stays in the list")
    await ctx.bus.js.delete_msg(c.WEBHOOK_FAILURES_STREAM, sequence)
    return {"event_id": failure.event_id, "status": "delivered"}


@router.delete("/webhooks/failures/{sequence}", status_code=204)
async def discard(sequence: Sequence, principal: Caller, ctx: Ctx, hooks: Hooks) -> None:
    """Take a failed delivery off the list without sending it."""
    _manager(principal)
    await _failure(ctx, hooks, principal, sequence)
    await ctx.bus.js.delete_msg(c.WEBHOOK_FAILURES_STREAM, sequence)
