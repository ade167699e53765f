"""The write guard at the one place every write passes: `Bus.publish_command`, over a real NATS.
What the commands stream holds is read back with a consumer of the test's own."""

from __future__ import annotations

import pytest
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from openmemory_core import contracts as c
from openmemory_core import stored_settings
from openmemory_core.bus import Bus
from openmemory_core.errors import InvalidInput
from openmemory_testing import unique

AWS_KEY = "AKIA" + "Z3QW7RT2" + "LMNP4XYV"


async def _stored_commands(bus: Bus, user: str) -> list[str]:
    """This user's commands in the stream (a work queue: read with explicit acks, never given)."""
    subject = c.command_subject(user, bus.partitions)
    config = ConsumerConfig(
        deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.EXPLICIT, filter_subject=subject
    )
    sub = await bus.js.pull_subscribe(subject, stream=c.COMMANDS_STREAM, config=config)
    try:
        pending = (await sub.consumer_info()).num_pending
        found = [m.data.decode() for m in await sub.fetch(pending, timeout=5)] if pending else []
    finally:
        await bus.js.delete_consumer(c.COMMANDS_STREAM, sub._consumer)  # the messages stay
        await sub.unsubscribe()
    return [f for f in found if c.CommandEnvelope.model_validate_json(f).command.user_id == user]


async def test_a_key_is_redacted_before_it_reaches_the_commands_stream(bus: Bus) -> None:
    user = unique("guard")
    await bus.publish_command(c.AddCommand(user_id=user, app="t", text=f"my aws key is {AWS_KEY}"))
    (stored,) = await _stored_commands(bus, user)
    assert AWS_KEY not in stored
    assert c.CommandEnvelope.model_validate_json(stored).command.text == "my aws key is [redacted: aws key]"  # type: ignore[union-attr]


async def test_an_import_is_redacted_in_text_context_and_metadata(bus: Bus) -> None:
    user = unique("guard")
    memory = c.ImportedMemory(
        text=f"key {AWS_KEY}", context="my password is Tr0ub4dor&3", metadata={"note": {"k": [AWS_KEY]}}
    )
    await bus.publish_command(c.ImportCommand(user_id=user, app="t", memories=[memory]))
    (stored,) = await _stored_commands(bus, user)
    assert AWS_KEY not in stored and "Tr0ub4dor" not in stored
    assert "[redacted: password]" in stored


async def test_refuse_publishes_nothing_and_says_what_was_found(bus: Bus) -> None:
    user = unique("guard")
    await stored_settings.save_guard(await bus.settings_bucket(), user, {"secrets": "refuse"})
    with pytest.raises(InvalidInput, match=r"nothing was stored.*aws key"):
        await bus.publish_command(c.AddCommand(user_id=user, app="t", text=f"key {AWS_KEY}"))
    with pytest.raises(InvalidInput, match="aws key") as refused:
        await bus.publish_command(
            c.EditCommand(user_id=user, app="t", memory_id=c.new_request_id(), text=AWS_KEY)
        )
    assert AWS_KEY not in str(refused.value)
    assert await _stored_commands(bus, user) == []


async def test_allow_and_pii_policies(bus: Bus) -> None:
    user = unique("guard")
    kv = await bus.settings_bucket()
    assert await stored_settings.load_guard(kv, user) == stored_settings.GuardPolicy()
    await stored_settings.save_guard(kv, user, {"secrets": "allow", "email": "redact"})
    with pytest.raises(InvalidInput):
        await stored_settings.save_guard(kv, user, {"phone": "shout"})
    await bus.publish_command(
        c.AddCommand(user_id=user, app="t", text=f"{AWS_KEY} jo@example.com +1 415 555 0132")
    )
    (stored,) = await _stored_commands(bus, user)
    text = c.CommandEnvelope.model_validate_json(stored).command.text  # type: ignore[union-attr]
    assert text == f"{AWS_KEY} [redacted: email] +1 415 555 0132"
