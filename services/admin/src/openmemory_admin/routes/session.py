"""Signing in to the dashboard with an API key, who is signed in, and signing out."""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from openmemory_admin.deps import Ctx, caller
from openmemory_admin.session import COOKIE, current_session, end_session, open_session, read
from openmemory_core import contracts as c
from openmemory_core.errors import Unauthorized
from openmemory_core.keys import principal_of, verify_key

router = APIRouter(tags=["session"])


class SignIn(BaseModel):
    api_key: str = Field(min_length=1, max_length=200)


class SessionInfo(BaseModel):
    user_id: str
    app: str
    scopes: list[str]
    csrf_token: str


@router.post("/session")
async def sign_in(body: SignIn, response: Response, request: Request, ctx: Ctx) -> SessionInfo:
    """Sign in to the dashboard with an API key; sets the session cookie. Failed sign-ins are
    counted per client address, which is refused (429) once it failed too often this minute."""
    address = request.client.host if request.client else ""
    await ctx.auth_failures.admit(address)
    try:
        principal = await verify_key(ctx.keys, body.api_key.strip())
    except Unauthorized:
        await ctx.auth_failures.failed(address)
        raise
    cookie, session = await open_session(ctx.settings_kv, ctx.secret, principal.key_id)
    response.set_cookie(
        COOKIE, cookie, httponly=True, samesite="strict", secure=request.url.scheme == "https",
        max_age=int(session.expires - datetime.now().timestamp()), path="/",
    )  # fmt: skip
    return SessionInfo(
        user_id=principal.user_id, app=principal.app, scopes=list(principal.scopes), csrf_token=session.csrf
    )


@router.get("/session")
async def whoami(request: Request, ctx: Ctx) -> SessionInfo:
    """The signed-in user and the CSRF token the dashboard sends with writes."""
    session = await current_session(ctx.settings_kv, ctx.secret, request.cookies.get(COOKIE))
    principal = await principal_of(ctx.keys, session.key_id)
    return SessionInfo(
        user_id=principal.user_id, app=principal.app, scopes=list(principal.scopes), csrf_token=session.csrf
    )


@router.delete("/session", status_code=204)
async def sign_out(
    _: Annotated[c.Principal, Depends(caller)], request: Request, response: Response, ctx: Ctx
) -> None:
    """Sign out: the session ends on the server, so its cookie is refused from now on everywhere."""
    with contextlib.suppress(Unauthorized):  # signed in by an API key: no session to end
        await end_session(ctx.settings_kv, read(ctx.secret, request.cookies.get(COOKIE)))
    response.delete_cookie(COOKIE, path="/")
