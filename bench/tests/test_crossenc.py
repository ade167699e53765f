"""The cross-encoder step measured over cached candidates (`openmemory_bench.crossenc`), with the real
model, on memories made here."""

import uuid
from pathlib import Path

from openmemory_bench import learned
from openmemory_bench.crossenc import TOPS, WEIGHTS, pooled, run, transfer
from openmemory_bench.rerank import Asked, Remembered, Settings, UserMemories
from openmemory_core import contracts as c
from openmemory_search.cross import CrossEncoder
from openmemory_search.ranking import RankingParams
from openmemory_testing import at

CROSS = CrossEncoder()


TOPICS = (
    ("Which book did Ana read?", "Bo: Do you like reading books at all?", "Ana: I read Dune.",
     "Bo: Do you like reading books at all? I never have time for books these days, with work and "
     "the kids, and the library in town closed last spring.",
     'Ana: I just finished reading "Dune" on the train this week, such a good story, I loved it.'),
    ("What pet did Ana adopt?", "Bo: Would you ever get a pet?", "Ana: We adopted a cat, Pixel.",
     "Bo: Would you ever get a pet? Pets are so much work though, and our landlord said no animals "
     "in the flat, not even a hamster.",
     "Ana: We adopted a grey cat called Pixel from the shelter last week, and he already rules the flat."),
    ("Where did Ana travel?", "Bo: Do you travel much?", "Ana: Patagonia, hiking.",
     "Bo: Do you travel much? I always want to travel more, but flights are so expensive now and I "
     "never know where to go first.",
     "Ana: I spent ten days hiking in Patagonia in March, the glaciers were stunning and the wind wild."),
)  # fmt: skip


def _conversation(name: str, long_answers: bool = True) -> tuple[list[Asked], dict[str, UserMemories]]:
    """Three questions on three topics; each one's answer says what the question asks, and a turn
    that asks about the topic, a reaction and other talk rank above it by meaning. `long_answers`:
    the answers say more than the turns that ask (else less: what length told one conversation's
    learned order misleads it on the other)."""
    memories: list[c.Memory] = []
    asked: list[Asked] = []
    turns: dict[str, list[str]] = {}
    for i, (question, short_about, short_answer, long_about, long_answer) in enumerate(TOPICS):
        about, answer = (short_about, long_answer) if long_answers else (long_about, short_answer)
        texts = [about, "Bo: Wow!", "Bo: The weather was lovely, so we walked along the river.", answer]
        said = [
            c.Memory(id=str(uuid.uuid4()), user_id=name, app="a", text=text, created_at=at(60 * (4 * i + j)),
                     updated_at=at(60 * (4 * i + j)), content_hash=text, request_id="r")
            for j, text in enumerate(texts)
        ]  # fmt: skip
        memories += said
        turns |= {m.id: [f"D{i}:{j}"] for j, m in enumerate(said)}
        dense = [(m.id, 0.9 - 0.05 * j) for j, m in enumerate(said)]
        asked.append(Asked(name, name, "multi-hop", (f"D{i}:3",), question, dense, [], None, False, [], []))
    return asked, {name: UserMemories({m.id: m for m in memories}, turns)}


def test_the_scores_are_computed_once_and_kept_in_a_file(tmp_path: Path) -> None:
    path = tmp_path / "cache.cross.pkl"
    first = Remembered(path, CROSS)
    texts = ["Ana: I read Dune.", "Bo: Do you like books?"]
    question = "Which book did Ana read?"
    scores = first(question, texts)
    assert scores == [CROSS.scores(question, [t])[0] for t in texts] and first.new == 2  # each alone
    assert first(question, texts[::-1]) == scores[::-1] and first.new == 2  # nothing computed again
    first.save()
    again = Remembered(path, CROSS)
    assert again(question, texts) == scores and again.new == 0


def test_each_fold_chooses_its_pair_on_the_other_conversations_and_is_measured_on_its_own() -> None:
    first, first_users = _conversation("conv-a")
    second, second_users = _conversation("conv-b")
    asked, users = first + second, first_users | second_users
    anywhere = Settings(RankingParams(learned_turns=0.0))  # these memories are not linked turns
    report = run(asked, users, 50, Remembered(None, CROSS), settings=anywhere)
    assert [f["held_out"] for f in report["folds"]] == ["conv-a", "conv-b"]
    assert all(tuple(f["chosen"]) in {(k, w) for k in TOPS for w in WEIGHTS} for f in report["folds"])
    alone = report["held_out"]["the learned order alone"]
    plain = learned.run(asked, users, 50, settings=anywhere)["held_out"]["learned order"]
    assert alone == plain  # the same folds and models as the learned order's own measurement
    stepped = report["held_out"]["with the cross-encoder step"]["overall"]
    assert stepped["mrr"] == alone["overall"]["mrr"] == 1.0  # each answer first, with the step too
    assert report["gain"] == (0.0, 0.0) and all(f["gain"] == (0.0, 0.0) for f in report["folds"])


def test_the_step_at_the_shipped_pair_is_measured_on_another_data_set() -> None:
    first, first_users = _conversation("conv-a")
    second, second_users = _conversation("conv-b")
    anywhere = Settings(RankingParams(learned_turns=0.0))
    report = transfer((first, first_users, 50), (second, second_users, 50), Remembered(None, CROSS), anywhere)
    names = list(report["figures"])
    assert report["questions"] == 3 and names == [
        "with the cross-encoder step (20, 0.5)",
        "the learned order alone",
    ]
    assert report["figures"][names[0]]["overall"]["mrr"] == 1.0
    assert (
        list(report["by_conversation"]) == ["conv-b"]
        and report["by_conversation"]["conv-b"] == report["gain"]
    )


def test_gains_pool_by_their_inverse_variance() -> None:
    assert pooled([(0.02, 0.01), (0.0, 0.01)]) == (0.01, round(0.01 / 2**0.5, 4))
    assert pooled([(0.03, 0.01), (-0.5, 0.1)]) == (0.0248, round(1 / 10100**0.5, 4))


def test_every_fold_can_be_held_to_the_shipped_pair() -> None:
    first, first_users = _conversation("conv-a")
    second, second_users = _conversation("conv-b")
    anywhere = Settings(RankingParams(learned_turns=0.0))
    cross = Remembered(None, CROSS)
    report = run(first + second, first_users | second_users, 50, cross, settings=anywhere, pair=(20, 0.5))
    assert [tuple(f["chosen"]) for f in report["folds"]] == [(20, 0.5), (20, 0.5)]
    chosen = run(first + second, first_users | second_users, 50, cross, settings=anywhere)
    assert [tuple(f["chosen"]) for f in chosen["folds"]] == [(10, 0.0), (10, 0.0)]  # the first best


def test_where_the_learned_order_is_misled_the_step_puts_the_answer_first() -> None:
    """Trained where answers say more than the turns that ask, the learned order puts the longer
    turn first on a conversation where answers say less; the cross-encoder reads what each says."""
    first, first_users = _conversation("conv-a", long_answers=True)
    second, second_users = _conversation("conv-b", long_answers=False)
    anywhere = Settings(RankingParams(learned_turns=0.0))
    report = run(first + second, first_users | second_users, 50, Remembered(None, CROSS), settings=anywhere)
    alone = report["held_out"]["the learned order alone"]["overall"]
    stepped = report["held_out"]["with the cross-encoder step"]["overall"]
    assert alone["mrr"] < 0.9 and stepped["mrr"] == 1.0
    # (the paired gain counts R@5 and R@10, which four candidates a question leave at 1 either way)
