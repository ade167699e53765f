"""Settings saved from the dashboard, on a real NATS KV bucket: model API keys are sealed at rest,
bound to the URL they were given with, and a base URL may not point at this machine's network."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from nats.js.kv import KeyValue
from pydantic import SecretStr

from openmemory_core import outbound
from openmemory_core.bus import Bus
from openmemory_core.errors import InvalidInput
from openmemory_core.sealed import KEY_FILE, Sealer, new_secrets_key, sealer_for
from openmemory_core.settings import CoreSettings, LLMSettings, Settings
from openmemory_core.stored_settings import (
    SETTINGS_KEY,
    StoredSettings,
    effective_embedder,
    effective_llm,
    load,
    save,
)
from openmemory_testing import unique

PUBLIC = "https://93.184.216.34/v1"  # a public address: checked without a name to resolve
OTHER_PUBLIC = "https://198.51.100.7/v1"  # TEST-NET-2: not global, so refused like a private one


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(core=CoreSettings(data_dir=tmp_path / "data"), llm=LLMSettings())


async def fresh_bucket(bus: Bus) -> KeyValue:
    # Each test its own bucket: the settings entry has one fixed key.
    from nats.js.api import KeyValueConfig

    return await bus.js.create_key_value(KeyValueConfig(bucket=unique("settings").replace("-", "_")))


async def test_a_saved_key_is_sealed_at_rest_and_opens_only_for_its_url(bus: Bus, settings: Settings) -> None:
    kv = await fresh_bucket(bus)
    secret = "sk-" + unique("secret")
    await save(kv, settings, StoredSettings(llm={"extractor": "llm", "base_url": PUBLIC, "api_key": secret}))
    raw = (await kv.get(SETTINGS_KEY)).value or b""
    assert secret.encode() not in raw and b"api_key_sealed" in raw
    stored, _ = await load(kv)
    llm = effective_llm(settings, stored)
    assert llm.api_key is not None and llm.api_key.get_secret_value() == secret
    # The same sealed value under another URL (as a tampered entry would have it) opens to nothing.
    moved = StoredSettings(llm={**stored.llm, "base_url": "https://93.184.216.35/v1"})
    assert effective_llm(settings, moved).api_key is None
    key_file = settings.core.data_dir / KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


async def test_changing_the_base_url_needs_the_key_again(bus: Bus, settings: Settings) -> None:
    kv = await fresh_bucket(bus)
    await save(kv, settings, StoredSettings(llm={"extractor": "llm", "base_url": PUBLIC, "api_key": "sk-a"}))
    before = (await kv.get(SETTINGS_KEY)).value
    with pytest.raises(InvalidInput, match="needs its API key again"):
        await save(kv, settings, StoredSettings(llm={"base_url": "https://93.184.216.35/v1"}))
    assert (await kv.get(SETTINGS_KEY)).value == before  # refused: nothing changed
    # Other changes keep the key; a new URL with a new key is fine.
    await save(kv, settings, StoredSettings(llm={"model": "other"}))
    assert effective_llm(settings, (await load(kv))[0]).api_key is not None
    await save(kv, settings, StoredSettings(llm={"base_url": "https://93.184.216.35/v1", "api_key": "sk-b"}))
    llm = effective_llm(settings, (await load(kv))[0])
    assert llm.api_key == SecretStr("sk-b") and llm.base_url == "https://93.184.216.35/v1"


async def test_the_environments_key_is_never_sent_to_a_saved_url(bus: Bus, tmp_path: Path) -> None:
    """The attack: another admin changed the shared base URL, and the operator's key went with it."""
    kv = await fresh_bucket(bus)
    env = Settings(
        core=CoreSettings(data_dir=tmp_path / "data", allow_private_urls=True),
        llm=LLMSettings(extractor="llm", base_url=PUBLIC, api_key=SecretStr("sk-operator")),
    )
    assert effective_llm(env, StoredSettings()).api_key == SecretStr("sk-operator")
    with pytest.raises(InvalidInput, match="needs its API key again"):
        await save(kv, env, StoredSettings(llm={"base_url": "http://127.0.0.1:9/v1"}))
    await save(kv, env, StoredSettings(llm={"base_url": "http://127.0.0.1:9/v1", "api_key": ""}))
    llm = effective_llm(env, (await load(kv))[0])
    assert llm.base_url == "http://127.0.0.1:9/v1" and llm.api_key is None
    # A stored entry that names another URL without going through `save` gets no key either.
    assert effective_llm(env, StoredSettings(llm={"base_url": OTHER_PUBLIC})).api_key is None


async def test_an_older_versions_plain_text_key_is_not_used_or_kept(bus: Bus, settings: Settings) -> None:
    kv = await fresh_bucket(bus)
    await kv.put(SETTINGS_KEY, b'{"llm": {"base_url": "https://93.184.216.34/v1", "api_key": "sk-plain"}}')
    assert effective_llm(settings, (await load(kv))[0]).api_key is None
    await save(kv, settings, StoredSettings(llm={"model": "m"}))
    assert b"sk-plain" not in ((await kv.get(SETTINGS_KEY)).value or b"")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8765/v1",
        "http://localhost:11434/v1",
        "http://10.1.2.3/v1",
        "http://192.168.1.1/v1",
        "http://172.16.0.1/v1",
        "http://169.254.169.254/latest",
        "http://[::1]:80/v1",
        "http://[::ffff:127.0.0.1]/v1",
        "http://0.0.0.0/v1",
        OTHER_PUBLIC,
    ],
)
async def test_a_saved_url_may_not_point_at_a_private_address(bus: Bus, settings: Settings, url: str) -> None:
    kv = await fresh_bucket(bus)
    with pytest.raises(outbound.PrivateAddressRefused):
        await save(kv, settings, StoredSettings(embedder={"base_url": url}))
    assert (await load(kv))[1] == 0  # nothing stored


async def test_private_urls_pass_when_the_operator_allows_them(bus: Bus, tmp_path: Path) -> None:
    kv = await fresh_bucket(bus)
    allowed = Settings(core=CoreSettings(data_dir=tmp_path / "d", allow_private_urls=True))
    await save(kv, allowed, StoredSettings(embedder={"base_url": "http://localhost:11434/v1"}))
    embedder = effective_embedder(allowed, (await load(kv))[0])
    assert embedder.base_url == "http://localhost:11434/v1" and not embedder.check_outbound
    strict = Settings(core=CoreSettings(data_dir=tmp_path / "d"))
    assert effective_embedder(strict, (await load(kv))[0]).check_outbound  # checked again at each request


@pytest.mark.parametrize("url", ["ftp://93.184.216.34/", "http://user:pw@93.184.216.34/", "not a url"])
async def test_a_url_of_another_form_is_refused(bus: Bus, settings: Settings, url: str) -> None:
    kv = await fresh_bucket(bus)
    with pytest.raises(InvalidInput):
        await save(kv, settings, StoredSettings(llm={"base_url": url}))


async def test_the_request_time_guard_refuses_a_private_host() -> None:
    import httpx

    async with httpx.AsyncClient(transport=outbound.PublicOnlyTransport()) as client:
        with pytest.raises(outbound.PrivateAddressRefused):
            await client.get("http://127.0.0.1:9/anything")
        with pytest.raises(outbound.PrivateAddressRefused):
            await client.get("http://localhost:9/anything")


def test_a_sealer_needs_its_own_key(tmp_path: Path) -> None:
    one, other = Sealer(b"k" * 32), Sealer(b"j" * 32)
    sealed = one.seal("sk-x", "llm|https://a")
    assert one.open(sealed, "llm|https://a") == "sk-x"
    assert other.open(sealed, "llm|https://a") is None
    assert one.open(sealed, "embedder|https://a") is None
    text = new_secrets_key()
    from_env = sealer_for(CoreSettings(data_dir=tmp_path, secrets_key=SecretStr(text)))
    assert not (tmp_path / KEY_FILE).exists()  # a configured key makes no file
    assert from_env.open(from_env.seal("s", "b"), "b") == "s"
