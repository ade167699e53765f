import asyncio
from datetime import timedelta

import pytest

from openmemory_core import contracts as c
from openmemory_core import keys
from openmemory_core.bus import Bus
from openmemory_core.contracts import ApiKeyRecord, now
from openmemory_core.errors import Forbidden, InvalidInput, NotFound, Unauthorized
from openmemory_testing import unique


async def test_a_created_key_verifies_to_its_user(bus: Bus) -> None:
    kv = await bus.keys_bucket()
    user = unique()
    token, record = await keys.create_key(kv, user)
    assert token.startswith(f"om_{record.prefix}_")
    principal = await keys.verify_key(kv, token)
    assert (principal.user_id, principal.app) == (user, "default")
    # Only the hash is stored.
    stored = await kv.get(record.key_id)
    assert stored.value is not None and token.encode() not in stored.value


@pytest.mark.parametrize("token", [None, "", "nonsense", "om_00000000_" + "a" * 43])
async def test_missing_or_unknown_keys_are_refused(bus: Bus, token: str | None) -> None:
    with pytest.raises(Unauthorized):
        await keys.verify_key(await bus.keys_bucket(), token)


async def test_app_binding(bus: Bus) -> None:
    kv = await bus.keys_bucket()
    bound, _ = await keys.create_key(kv, unique(), app="cursor")
    assert (await keys.verify_key(kv, bound)).app == "cursor"
    assert (await keys.verify_key(kv, bound, requested_app="cursor")).app == "cursor"
    with pytest.raises(Forbidden):
        await keys.verify_key(kv, bound, requested_app="claude")
    free, _ = await keys.create_key(kv, unique())
    assert (await keys.verify_key(kv, free, requested_app="windsurf")).app == "windsurf"
    with pytest.raises(InvalidInput):
        await keys.verify_key(kv, free, requested_app="bad name!")


async def test_revoked_keys_stop_working(bus: Bus) -> None:
    kv = await bus.keys_bucket()
    user = unique()
    token, record = await keys.create_key(kv, user)
    revoked = await keys.revoke_key(kv, record.prefix)
    assert revoked.revoked
    with pytest.raises(Unauthorized, match="revoked"):
        await keys.verify_key(kv, token)
    with pytest.raises(NotFound):
        await keys.revoke_key(kv, record.prefix)
    listed = await keys.list_keys(kv, user)
    assert [(r.prefix, r.revoked) for r in listed] == [(record.prefix, True)]


async def test_bad_names_and_scopes_are_refused(bus: Bus) -> None:
    kv = await bus.keys_bucket()
    with pytest.raises(InvalidInput):
        await keys.create_key(kv, "has space")
    with pytest.raises(InvalidInput):
        await keys.create_key(kv, unique(), scopes=("root",))


async def test_last_use_is_recorded_and_never_undoes_a_revocation(bus: Bus) -> None:
    kv = await bus.keys_bucket()
    token, record = await keys.create_key(kv, unique())
    await keys.verify_key(kv, token)
    entry = await kv.get(record.key_id)
    seen = ApiKeyRecord.model_validate_json(entry.value or b"")
    assert seen.last_used_at is not None
    # A use that read the key just before a revocation writes its last-use afterwards: refused.
    stale = seen.model_copy(update={"last_used_at": None})
    await keys.revoke_key(kv, record.prefix)
    await keys._touch(kv, stale, entry.revision)
    after = ApiKeyRecord.model_validate_json((await kv.get(record.key_id)).value or b"")
    assert after.revoked
    with pytest.raises(Unauthorized, match="revoked"):
        await keys.verify_key(kv, token)


async def test_an_expired_key_is_refused(bus: Bus) -> None:
    kv = await bus.keys_bucket()
    with pytest.raises(InvalidInput, match="past"):
        await keys.create_key(kv, unique(), expires_at=now() - timedelta(seconds=1))
    token, _ = await keys.create_key(kv, unique(), expires_at=now() + timedelta(seconds=0.5))
    await keys.verify_key(kv, token)
    await asyncio.sleep(0.6)
    with pytest.raises(Unauthorized, match="expired"):
        await keys.verify_key(kv, token)


async def test_listing_keys_leaves_no_consumers_behind(bus: Bus) -> None:
    kv = await bus.keys_bucket()
    user = unique()
    await keys.create_key(kv, user)
    for _ in range(30):
        assert len(await keys.list_keys(kv, user)) == 1
    info = await bus.js.stream_info(f"KV_{c.KEYS_BUCKET}")
    assert info.state.consumer_count == 0
