import pytest

from openmemory_core import keys
from openmemory_core.bus import Bus
from openmemory_core.errors import Forbidden, InvalidInput, NotFound, Unauthorized
from openmemory_core.testing import unique


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
