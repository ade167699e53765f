from openmemory_core.text.speakers import named_in, speaker, words


def test_a_transcript_line_is_said_by_the_name_before_its_colon() -> None:
    assert speaker("Caroline: I went to a support group yesterday.") == (
        "Caroline", "I went to a support group yesterday."
    )  # fmt: skip
    assert speaker("Jon Snow: Winter is coming.") == ("Jon Snow", "Winter is coming.")
    assert speaker("Mary-Jane: I'll be late.") == ("Mary-Jane", "I'll be late.")


def test_a_label_or_a_line_without_a_name_is_no_ones() -> None:
    for text in (
        "Note: I'm vegan.",  # a label: the user's own words
        "User: I moved to Berlin.",
        "Reminder: call the dentist",
        "I went to Lisbon: it was lovely.",  # the colon is not after a name
        "caroline: lower case",
        "Caroline:no space",
        "Caroline: ",  # nothing said
        "A: one letter",
        "",
    ):
        assert speaker(text) == (None, text), text


def test_a_speaker_is_named_when_every_word_of_the_name_is_in_the_question() -> None:
    asked = words("What did Jon Snow's sister say about Caroline?")
    assert asked >= {"jon", "snow", "s", "caroline"}
    assert named_in("Caroline", asked) and named_in("Jon Snow", asked) and named_in("jon", asked)
    assert not named_in("Jon Stark", asked)  # one word of the name is not enough
    assert not named_in("Carol", asked)  # a word, not a prefix
    assert not named_in("", asked) and not named_in("Caroline", words(""))
