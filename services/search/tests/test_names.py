"""Names in a question, which search looks up in the graph."""

from openmemory_search.names import find_entities


def test_find_entities_skips_sentence_openers() -> None:
    assert find_entities("My sister Anna moved to New York with Tom.") == ["Anna", "New York", "Tom"]
    assert find_entities("I'm vegetarian") == []
    assert find_entities("Yesterday I met Dr Smith at Google") == ["Dr Smith", "Google"]
