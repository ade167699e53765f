import uuid

import pytest
from pydantic import ValidationError

from openmemory_core import contracts as c
from openmemory_core.errors import InvalidInput


def test_partition_is_stable_and_in_range() -> None:
    parts = {c.partition_of(f"user-{i}", 8) for i in range(200)}
    assert parts == set(range(8))
    assert c.partition_of("alice", 8) == c.partition_of("alice", 8)
    assert c.command_subject("alice", 8) == f"om.cmd.{c.partition_of('alice', 8)}"


def test_event_subject_is_a_valid_token_for_any_user_id() -> None:
    subject = c.event_subject("jane.doe@example.com with spaces")
    assert subject.startswith("om.evt.")
    assert subject.count(".") == 2 and " " not in subject


def test_memory_ids_derive_from_the_request() -> None:
    assert c.memory_id_for("r1", 0) == c.memory_id_for("r1", 0)
    assert c.memory_id_for("r1", 0) != c.memory_id_for("r1", 1)
    assert c.memory_id_for("r1", 0) != c.memory_id_for("r2", 0)


def test_content_hash_ignores_case_and_spacing_but_not_user() -> None:
    assert c.content_hash("u", "I like  Tea") == c.content_hash("u", "i like tea")
    assert c.content_hash("u", "I like tea") != c.content_hash("v", "I like tea")


def test_command_envelope_round_trips_each_kind() -> None:
    commands = [
        c.AddCommand(user_id="u", app="a", text="hello"),
        c.DeleteCommand(user_id="u", app="a", memory_ids=[c.memory_id_for("r", 0)]),
        c.DeleteAllCommand(user_id="u", app="a"),
    ]
    for command in commands:
        data = c.CommandEnvelope(command=command).model_dump_json()
        assert c.CommandEnvelope.model_validate_json(data).command == command


def test_unknown_command_kind_is_rejected() -> None:
    with pytest.raises(ValidationError):
        c.CommandEnvelope.model_validate_json('{"command": {"kind": "explode", "user_id": "u", "app": "a"}}')


def test_principal_scopes() -> None:
    reader = c.Principal(user_id="u", app="a", key_id="k", scopes=("read",))
    assert reader.can("read") and not reader.can("write")
    admin = c.Principal(user_id="u", app="a", key_id="k", scopes=("admin",))
    assert admin.can("write")


def test_every_spelling_of_a_memory_id_is_one_id() -> None:
    canonical = c.memory_id_for("r1", 0)
    value = uuid.UUID(canonical)
    spellings = [canonical.upper(), "{" + canonical + "}", value.urn, value.hex, value.hex.upper()]
    for spelling in spellings:
        assert c.DeleteCommand(user_id="u", app="a", memory_ids=[spelling]).memory_ids == [canonical]
        assert c.EditCommand(user_id="u", app="a", memory_id=spelling, text="t").memory_id == canonical
        assert c.GetRequest(user_id="u", memory_ids=[spelling]).memory_ids == [canonical]
        assert c.ImportedMemory(id=spelling, text="t", previous=spelling).id == canonical
    assert c.canonical_ids([*spellings, canonical]) == [canonical]  # one id, once
    assert c.GetRequest(user_id="u", memory_ids=["x"]).memory_ids == ["x"]  # looked up: found nowhere
    with pytest.raises(ValidationError):
        c.DeleteCommand(user_id="u", app="a", memory_ids=["x"])  # acted on: refused
    with pytest.raises(InvalidInput, match="not a memory id: '42'"):
        c.canonical_ids(["42"])


@pytest.mark.parametrize("app", ["cursor\n", "<b>x</b>", "../..", "a\x00b", ""])
def test_an_imported_memorys_app_follows_the_name_rules(app: str) -> None:
    with pytest.raises(ValidationError):
        c.ImportedMemory(text="t", app=app)


def test_only_an_operator_key_operates() -> None:
    admin = c.Principal(user_id="u", app="a", key_id="k", scopes=("admin",))
    operator = c.Principal(user_id="u", app="a", key_id="k", scopes=("operator",))
    assert admin.can("read") and admin.can("write") and not admin.can("operator")
    assert operator.can("operator") and not operator.can("read") and not operator.can("admin")
