"""The learned order's training and its leave-one-conversation-out measurement, on memories made here."""

import uuid

import numpy as np
import pytest

from openmemory_bench import learned
from openmemory_bench.learned import fit, main, run, transfer
from openmemory_bench.rerank import Asked, Settings, UserMemories
from openmemory_core import contracts as c
from openmemory_search.ranking import FEATURES, RankingParams
from openmemory_testing import at


def test_the_fit_weighs_the_feature_that_tells_answers_apart() -> None:
    rng = np.random.default_rng(7)
    x = rng.random((400, len(FEATURES)))
    length = FEATURES.index("length")
    y = (x[:, length] > 0.7).astype(np.float64)  # only the length says which rows are answers
    model = fit(x, y)
    weights = list(model.weights)
    assert weights[length] == max(weights) and weights[length] > 5 * max(abs(w) for w in weights[:length])
    scores = model.scores(x.tolist())
    answers = [s for s, label in zip(scores, y, strict=True) if label]
    others = [s for s, label in zip(scores, y, strict=True) if not label]
    pairs = sum(a > o for a in answers for o in others) / (len(answers) * len(others))
    assert pairs > 0.99 and all(0.0 < s < 1.0 for s in scores)  # nearly every answer above every other


def _conversation(name: str) -> tuple[list[Asked], dict[str, UserMemories]]:
    """Three questions; each one's answer says something at length, and six short reactions rank
    above it by meaning (cosines 0.95 down to 0.85 against 0.8)."""
    memories: list[c.Memory] = []
    asked: list[Asked] = []
    turns: dict[str, list[str]] = {}
    for i in range(3):
        texts = [f"Bo: Wow {j}!" for j in range(6)]
        texts.append(f"Ana: On day {i} I adopted a grey cat named Pixel from the shelter by the old harbour.")
        said = [
            c.Memory(id=str(uuid.uuid4()), user_id=name, app="a", text=text, created_at=at(60 * (7 * i + j)),
                     updated_at=at(60 * (7 * i + j)), content_hash=text, request_id="r")
            for j, text in enumerate(texts)
        ]  # fmt: skip
        memories += said
        turns |= {m.id: [f"D{i}:{j}"] for j, m in enumerate(said)}
        dense = [(m.id, 0.95 - 0.02 * j) for j, m in enumerate(said[:6])] + [(said[6].id, 0.8)]
        asked.append(Asked(name, name, "single-hop", (f"D{i}:6",), "what about the zebra?", dense,
                           [], None, False, [], []))  # fmt: skip
    return asked, {name: UserMemories({m.id: m for m in memories}, turns)}


def test_each_conversation_is_measured_by_a_model_trained_on_the_others() -> None:
    first, first_users = _conversation("conv-a")
    second, second_users = _conversation("conv-b")
    anywhere = Settings(RankingParams(learned_turns=0.0))  # these memories are not linked turns
    report = run(first + second, first_users | second_users, candidates=50, settings=anywhere)
    learned, fused = (
        report["held_out"]["learned order"]["overall"],
        report["held_out"]["fused order"]["overall"],
    )
    assert fused["recall@5"] == 0.0 and fused["mrr"] == round(1 / 7, 4)  # fusion alone: the reactions first
    assert learned["recall@5"] == learned["mrr"] == 1.0  # trained on the other conversation: the answer
    mean, _ = report["gain"]
    assert mean == 0.5 and [f["held_out"] for f in report["folds"]] == ["conv-a", "conv-b"]
    assert report["shipped"]["weights"][FEATURES.index("length")] > 0


def test_who_said_it_is_fitted_on_top_of_the_other_features_and_moves_nothing_else() -> None:
    rng = np.random.default_rng(11)
    x = rng.random((600, len(FEATURES)))
    who = [FEATURES.index("said_by_named"), FEATURES.index("said_by_other")]
    others = [i for i, name in enumerate(FEATURES) if i not in who and name != "particular"]
    y = ((x[:, FEATURES.index("length")] + x[:, who[0]]) > 1.0).astype(np.float64)
    model = fit(x, y)
    shuffled = x.copy()
    shuffled[:, who] = rng.random((600, len(who)))  # other values of who said it, same labels
    again = fit(shuffled, y)
    # the other features' weights are what they would be without who said it ...
    assert [model.weights[i] for i in others] == [again.weights[i] for i in others]
    # ... and who said it has a weight of its own where it tells answers apart
    assert model.weights[who[0]] > 0.5 and abs(again.weights[who[0]]) < 0.2


def test_whether_a_turn_names_something_particular_is_fitted_last() -> None:
    rng = np.random.default_rng(12)
    x = rng.random((600, len(FEATURES)))
    last = [FEATURES.index("particular")]
    before = [i for i in range(len(FEATURES)) if i not in last]
    y = ((x[:, FEATURES.index("length")] + x[:, last[0]]) > 1.0).astype(np.float64)
    model = fit(x, y)
    shuffled = x.copy()
    shuffled[:, last] = rng.random((600, len(last)))
    again = fit(shuffled, y)
    # every weight fitted before it, who said it included, is untouched by its values ...
    assert [model.weights[i] for i in before] == [again.weights[i] for i in before]
    # ... and it weighs where it tells answers apart
    assert model.weights[last[0]] > 0.5 and abs(again.weights[last[0]]) < 0.2


def test_what_features_add_is_measured_against_a_model_trained_without_them() -> None:
    first, first_users = _conversation("conv-a")
    second, second_users = _conversation("conv-b")
    anywhere = Settings(RankingParams(learned_turns=0.0))
    every = tuple(FEATURES)  # a model without any: no weight at all, the fused order stands
    report = run(first + second, first_users | second_users, 50, settings=anywhere, without=every)
    held_out = report["held_out"]
    assert held_out["learned order"]["overall"]["recall@5"] == 1.0
    assert held_out[f"order without {', '.join(every)}"] == held_out["fused order"]
    assert report["without"] == {"features": list(every), "gain": (0.5, 0.0)}
    assert [f["gain_over_without"] for f in report["folds"]] == [(0.5, 0.0), (0.5, 0.0)]
    # without a feature that is the same for every candidate here, nothing is lost
    same = run(first + second, first_users | second_users, 50, settings=anywhere, without=("rank_told_time",))
    assert same["without"]["gain"] == (0.0, 0.0)


def test_a_model_trained_on_one_data_set_is_measured_on_another() -> None:
    first, first_users = _conversation("conv-a")
    second, second_users = _conversation("conv-b")
    anywhere = Settings(RankingParams(learned_turns=0.0))
    every = tuple(FEATURES)
    report = transfer((first, first_users, 50), (second, second_users, 50), every, anywhere)
    figures, without = report["figures"], f"order without {', '.join(every)}"
    assert report["questions"] == 3 and list(figures) == ["learned order", "fused order", without]
    assert figures["learned order"]["overall"]["recall@5"] == 1.0  # trained on the other: the answer first
    assert figures["fused order"]["overall"]["recall@5"] == 0.0 and figures[without] == figures["fused order"]
    for name in ("fused order", without):
        assert report["gains"][name] == {"overall": (0.5, 0.0), "by_conversation": {"conv-b": (0.5, 0.0)}}


def test_the_command_refuses_a_feature_it_does_not_have(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["--cv-cache", "/nonexistent/cache", "--without", "particular,zebra"])
    assert stopped.value.code == 2 and "no feature named zebra" in capsys.readouterr().err


def test_a_later_step_must_name_features_the_order_has_once(monkeypatch: pytest.MonkeyPatch) -> None:
    x, y = np.random.default_rng(3).random((50, len(FEATURES))), np.arange(50) % 2
    for later in ((("said_by_named", "said_by_other"), ("particulars",)), (("particular",), ("particular",))):
        monkeypatch.setattr(learned, "LATER", later)
        with pytest.raises(ValueError, match="later steps"):
            fit(x, y.astype(np.float64))
