from openmemory_core.extraction import SentenceExtractor, find_entities, split_facts


def test_split_facts_on_sentences_lines_and_bullets() -> None:
    text = "I love hiking. My sister Anna lives in Vienna!\n- likes green tea\n\n2) works at Acme Corp"
    assert split_facts(text) == [
        "I love hiking.",
        "My sister Anna lives in Vienna!",
        "likes green tea",
        "works at Acme Corp",
    ]


def test_split_facts_drops_empty_and_repeated() -> None:
    assert split_facts("  \n . \nSame thing. Same thing.") == ["Same thing."]


def test_find_entities_skips_sentence_openers() -> None:
    assert find_entities("My sister Anna moved to New York with Tom.") == ["Anna", "New York", "Tom"]
    assert find_entities("I'm vegetarian") == []
    assert find_entities("Yesterday I met Dr Smith at Google") == ["Dr Smith", "Google"]


async def test_infer_false_keeps_text_verbatim() -> None:
    facts = await SentenceExtractor().extract("  One. Two about Paris.  ", infer=False)
    assert [f.text for f in facts] == ["One. Two about Paris."]
    assert facts[0].entities == ["Paris"]
    assert [f.text for f in await SentenceExtractor().extract("One. Two.", infer=True)] == ["One.", "Two."]
