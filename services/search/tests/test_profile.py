"""The profile builder: what it says of a user, what it leaves out, and its bounds; then the same
through the search service over real stores, with memories ingest extracted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from openmemory_core import contracts as c
from openmemory_ingest.service import IngestService
from openmemory_search import profile as p
from openmemory_search.service import SearchService
from openmemory_testing import unique

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def memory(n: int, text: str, *relations: tuple[str, str, str], **fields: object) -> c.Memory:
    return c.Memory.model_validate(
        {
            "id": f"00000000-0000-4000-8000-{n:012d}",
            "user_id": "u",
            "app": "a",
            "text": text,
            "relations": [{"subject": s, "type": t, "object": o} for s, t, o in relations],
            "created_at": T0 + timedelta(minutes=n),
            "updated_at": T0 + timedelta(minutes=n),
            "content_hash": str(n),
            "request_id": str(n),
            **fields,
        }
    )


def sections(profile: c.ProfileResponse) -> dict[str, list[str]]:
    return {s.title: s.lines for s in profile.sections}


def test_who_where_work_preferences_and_people() -> None:
    memories = [
        memory(1, "User's name is Dana Whitfield.", categories=["personal"]),
        memory(2, "User lives in Lisbon.", ("User", "LIVES_IN", "Lisbon")),
        memory(3, "User works as a data engineer at Acme Corp.",
               ("User", "WORKS_AT", "Acme Corp"), ("User", "WORKS_AS", "data engineer")),
        memory(4, "User loves jazz and hiking.", ("User", "LIKES", "jazz"), ("User", "LIKES", "hiking")),
        memory(5, "User is allergic to penicillin.", ("User", "ALLERGIC_TO", "penicillin")),
        memory(6, "User's sister Anna lives in Vienna.",
               ("User", "HAS_SISTER", "Anna"), ("Anna", "LIVES_IN", "Vienna")),
        memory(7, "User's dog is called Biscuit.", ("User", "HAS_PET", "Biscuit")),
        memory(8, "User speaks Portuguese.", ("User", "SPEAKS", "Portuguese")),
        memory(9, "User is 34 years old.", categories=["personal"]),
        memory(10, "User has a standing desk at home.", categories=["work"]),
        memory(11, "User went to the cinema.", categories=["entertainment"]),
    ]  # fmt: skip
    built = p.build_profile(memories)
    assert sections(built) == {
        "Who": ["Name: Dana Whitfield", "Age: 34", "Speaks: Portuguese"],
        "Where": ["Lives in: Lisbon"],
        "Work": ["Works as: data engineer", "Works at: Acme Corp"],
        "Preferences": ["Allergic to: penicillin", "Likes: jazz, hiking"],
        "People": ["Pet: Biscuit", "Sister: Anna (lives in Vienna)"],
        "Notes": ["User has a standing desk at home."],
    }
    assert built.read == 11 and not built.truncated
    assert "00000000-0000-4000-8000-000000000011" not in built.memory_ids  # nothing of it is shown
    assert set(built.memory_ids) == {f"00000000-0000-4000-8000-{n:012d}" for n in range(1, 11)}


def test_only_current_memories_and_the_newest_value_first() -> None:
    memories = [
        memory(1, "User lives in Porto.", ("User", "LIVES_IN", "Porto"),
               superseded_by="00000000-0000-4000-8000-000000000003"),
        memory(2, "User lives in Faro.", ("User", "LIVES_IN", "Faro"), state=c.MemoryState.ARCHIVED),
        memory(3, "User moved to Lisbon.", ("User", "LIVES_IN", "Lisbon")),
        memory(4, "User now lives in Berlin.", ("User", "LIVES_IN", "Berlin")),
        memory(5, "User was deleted.", ("User", "LIKES", "x"), state=c.MemoryState.DELETED),
    ]  # fmt: skip
    built = p.build_profile(reversed(memories))  # any order in: the same profile out
    assert sections(built) == {"Where": ["Lives in: Berlin, Lisbon"]}
    assert built == p.build_profile(memories) and built.read == 2


def test_an_empty_store_gives_an_empty_profile() -> None:
    built = p.build_profile([])
    assert built.sections == [] and built.memory_ids == [] and built.read == 0


def test_a_relation_type_a_model_invented_still_reads_as_words() -> None:
    built = p.build_profile(
        [memory(1, "x", ("User", "HAS_BEST_FRIEND", "Sam"), ("user", "VOLUNTEERS_AT", "Red Cross"))]
    )
    assert sections(built) == {"People": ["Best friend: Sam"], "Also": ["Volunteers at: Red Cross"]}


def test_every_part_is_bounded() -> None:
    many = [memory(n, f"likes {n}", ("User", "LIKES", f"thing {n} " + "x" * 300)) for n in range(50)]
    many += [memory(100 + n, "x", ("User", f"HAS_KIN{n}", f"Person {n}")) for n in range(30)]
    many += [memory(200 + n, "User notes " + "y" * 5000, categories=["personal"]) for n in range(20)]
    built = p.build_profile(many)
    lines = [line for s in built.sections for line in s.lines]
    assert built.truncated
    assert all(len(line) <= p.MAX_LINE_CHARS for line in lines)
    assert all(len(s.lines) <= p.MAX_LINES_PER_SECTION for s in built.sections)
    assert sum(map(len, lines)) + sum(len(s.title) for s in built.sections) <= p.MAX_CHARS
    assert sections(built)["Preferences"][0].endswith("…")
    assert len(sections(built)["People"]) == p.MAX_LINES_PER_SECTION


def test_many_values_of_one_kind_say_how_many_were_left_out() -> None:
    built = p.build_profile([memory(n, "x", ("User", "LIKES", f"t{n}")) for n in range(12)])
    (line,) = sections(built)["Preferences"]
    assert line == "Likes: t11, t10, t9, t8, t7, t6, t5, t4 and 4 more" and built.truncated


async def test_the_search_service_builds_it_from_what_ingest_stored(
    stores: tuple[IngestService, SearchService],
) -> None:
    ingest, search = stores
    user, other = unique(), unique()
    for text in (
        "I live in Porto. I work as a nurse.",
        "I moved to Lisbon.",
        "My sister Anna lives in Vienna. I am allergic to peanuts.",
    ):
        await ingest.apply(c.AddCommand(user_id=user, app="a", text=text))
    built = await search.profile(c.ProfileRequest(user_id=user))
    found = sections(built)
    assert found["Where"] == ["Lives in: Lisbon"]  # Porto was replaced by the move
    assert found["Work"] == ["Works as: nurse"]
    assert found["People"] == ["Sister: Anna (lives in Vienna)"]
    assert found["Preferences"] == ["Allergic to: peanuts"]
    assert (await search.profile(c.ProfileRequest(user_id=other))).sections == []
