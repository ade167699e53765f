"""Properties of the contracts, over generated inputs (hypothesis)."""

import json
import re
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from openmemory_core import contracts as c
from openmemory_core.bus import _json, _reply
from openmemory_core.errors import InvalidInput
from openmemory_core.stores.vectors import DERIVED, memory_of, payload_of

SUBJECT_TOKEN = re.compile(r"^[0-9a-f]{32}$")
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=20,
)
#: What JSON can carry (metadata arrives as JSON): no infinities either.
finite_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=20,
)


@given(st.text(max_size=300))
def test_any_user_id_makes_valid_subjects_and_a_partition_in_range(user: str) -> None:
    for subject in (c.event_subject(user), c.access_subject(user)):
        prefix, token = subject.rsplit(".", 1)
        assert SUBJECT_TOKEN.match(token) and " " not in subject and prefix.count(".") == 1
    assert 0 <= c.partition_of(user, 8) < 8
    assert c.app_key(user, "cursor") != c.app_key(user + "x", "cursor")


@given(st.text(max_size=200), st.text(max_size=200))
def test_content_hash_is_blind_to_case_and_spacing_only(user: str, text: str) -> None:
    assert c.content_hash(user, text) == c.content_hash(user, "  " + text.casefold() + "\n")
    assert c.content_hash(user, text) != c.content_hash(user + "\x01", text)


@given(st.text(max_size=60))
def test_memory_ids_are_recognised_exactly(value: str) -> None:
    assert c.is_memory_id(c.memory_id_for(value, 0))
    if not re.fullmatch(r"[{]?(urn:uuid:)?[0-9a-fA-F-]{32,36}[}]?", value.strip()):
        assert not c.is_memory_id(value)


def _by_uuid(value: str) -> str | None:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


@given(st.uuids(), st.sampled_from(["{}", "{{{}}}", "urn:uuid:{}", "{} ", "\n{}", "{}\n"]), st.booleans())
def test_every_spelling_of_an_id_is_read_as_uuid_reads_it(
    value: uuid.UUID, spelling: str, upper: bool
) -> None:
    """The canonical form skips parsing (a search reads ~100 ids): it must agree with `uuid.UUID`."""
    text = spelling.format(str(value).upper() if upper else str(value))
    expected = _by_uuid(text)
    assert c.is_memory_id(text) is (expected is not None)
    if expected is None:
        with pytest.raises(ValueError, match="not a memory id"):
            c.canonical_id(text)
    else:
        assert c.canonical_id(text) == expected == str(value)


@given(
    st.uuids(), st.sampled_from(["{}", "{{{}}}", "urn:uuid:{}", "{} "]), st.booleans(), st.text(max_size=40)
)
def test_a_referenced_id_is_canonical_when_it_is_a_uuid_and_kept_when_not(
    value: uuid.UUID, spelling: str, upper: bool, other: str
) -> None:
    """`MemoryRef` (a stored memory's `previous`, `superseded_by`, its own id) takes the canonical
    spelling as it is and reads every other one as `uuid.UUID` does; a text that is no id is kept."""
    text = spelling.format(str(value).upper() if upper else str(value))
    memory = c.Memory(
        id=text, user_id="u", app="a", text="t", created_at=c.now(), updated_at=c.now(),
        content_hash="h", request_id="r", previous=other, superseded_by=str(value),
    )  # fmt: skip
    assert memory.id == (_by_uuid(text) or text)
    assert memory.superseded_by == str(value)
    assert memory.previous == (_by_uuid(other) or other)


@given(
    st.text(max_size=80),
    st.lists(st.text(max_size=12), max_size=4),
    st.booleans(),
    st.booleans(),
    st.dictionaries(st.text(max_size=8), finite_json, max_size=3),
)
def test_a_memory_reads_back_from_its_payload_unchanged(
    text: str, names: list[str], told: bool, replaced: bool, metadata: dict[str, Any]
) -> None:
    """The payload holds derived fields (`DERIVED`) besides the memory's own; reading it back
    ignores them and gives the same memory."""
    now = c.now()
    memory = c.Memory(
        id=c.memory_id_for(text, 0), user_id="u", app="a", text=text, state=c.MemoryState.ARCHIVED,
        entities=names, entity_kinds={n: "person" for n in names},
        relations=[c.Relation(subject="User", type="KNOWS", object=n) for n in names],
        created_at=now, updated_at=now, occurred_at=now if told else None,
        superseded_by=c.memory_id_for(text, 1) if replaced else None, context=text or None,
        metadata=metadata, content_hash="h", request_id="r",
    )  # fmt: skip
    payload = payload_of(memory)
    assert set(DERIVED) <= set(payload)
    assert memory_of(payload) == memory


@given(json_values)
def test_a_command_envelope_from_any_json_is_a_command_or_a_validation_error(value: Any) -> None:
    try:
        envelope = c.CommandEnvelope.model_validate_json(json.dumps(value))
    except ValidationError:
        return
    assert envelope.command.kind in {
        "add",
        "delete",
        "delete_all",
        "reembed",
        "rebuild",
        "edit",
        "set_state",
        "import",
    }


@given(st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()))
@settings(max_examples=200)
async def test_a_query_from_any_bytes_gets_an_answer_never_an_exception(data: bytes) -> None:
    async def handler(payload: dict[str, Any]) -> c.SearchResponse:
        request = c.SearchRequest.model_validate(payload)
        return c.SearchResponse(hits=[], missing_signals=[request.query[:0]])

    reply = await _reply(handler, data, c.Query.SEARCH)
    assert reply.ok or (reply.error_code == InvalidInput.code and reply.error)


@pytest.mark.parametrize("raw", [b"[]", b"3", b"not json", b"\xff\xfe"])
def test_the_bus_refuses_non_objects_with_a_clear_error(raw: bytes) -> None:
    with pytest.raises(InvalidInput, match="JSON"):
        _json(raw)
