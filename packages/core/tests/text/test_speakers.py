import unicodedata

from openmemory_core.text.speakers import (
    PARTICULAR_CAP,
    named_in,
    names_in,
    names_particular,
    people,
    speaker,
)


def test_a_transcript_line_is_said_by_the_name_before_its_colon() -> None:
    assert speaker("Caroline: I went to a support group yesterday.") == (
        "Caroline", "I went to a support group yesterday."
    )  # fmt: skip
    assert speaker("Jon Snow: Winter is coming.") == ("Jon Snow", "Winter is coming.")
    assert speaker("Mary-Jane: I'll be late.") == ("Mary-Jane", "I'll be late.")
    assert speaker("Émilie: Bonjour !") == ("Émilie", "Bonjour !")  # a capital beyond A-Z
    assert speaker("Hyun-woo: I got the job.") == ("Hyun-woo", "I got the job.")


def test_a_label_or_a_line_without_a_name_is_no_ones() -> None:
    for text in (
        "Note: I'm vegan.",  # a label: the user's own words
        "User: I moved to Berlin.",
        "Reminder: call the dentist",
        "Tomorrow: dentist at 9",  # a heading of a plan or a note
        "Monday: gym",
        "Meeting: budget review with Sam",
        "I went to Lisbon: it was lovely.",  # the colon is not after a name
        "caroline: lower case",
        "DJ: two capitals",
        "Jon snow: the second word in lower case",
        "Caroline:no space",
        "Caroline: ",  # nothing said
        "A: one letter",
        "",
    ):
        assert speaker(text) == (None, text), text


def test_the_names_in_a_question_are_its_capitalised_words_as_written() -> None:
    names = names_in("What did Jon Snow's sister say about Caroline?")
    assert {"Jon", "Snow", "Caroline"} <= names and "What" not in names and "sister" not in names
    assert named_in("Caroline", names) and named_in("Jon Snow", names)
    assert not named_in("Jon Stark", names)  # one word of the name is not enough
    assert not named_in("Carol", names)  # a word, not a prefix
    assert not named_in("", names) and not named_in("Caroline", names_in(""))
    # a common word is not a name: the modal "will", a question opening with "Will" or "May"
    assert not named_in("Will", names_in("Where will the kids go on Saturday?"))
    assert not named_in("Will", names_in("Will the kids go to the lake?"))
    assert not named_in("May", names_in("May I ask what Ana cooked?"))
    assert named_in("Will", names_in("What did Will cook? Will liked it."))  # mid-sentence, a name
    # a question typed without capitals: every word
    assert named_in("Caroline", names_in("what did caroline paint?"))
    # a name with a hyphen or an apostrophe is one word, and its possessive is the name
    assert named_in("Hyun-woo", names_in("Where did Hyun-woo's team go?"))
    assert named_in("O'Neil", names_in("What did O'Neil's mother bake?"))
    assert not named_in("Hyun-woo", names_in("Where did Hyun go?"))


def test_a_name_matches_however_its_accents_were_typed() -> None:
    composed, decomposed = "Lucía", unicodedata.normalize("NFD", "Lucía")
    assert composed != decomposed
    assert named_in(composed, names_in(f"What did {decomposed} bake?"))
    assert named_in(decomposed, names_in(f"What did {composed} bake?"))


def test_a_turn_names_something_particular_by_a_name_a_quotation_or_a_number() -> None:
    speakers = people(["Ana", "Bo Li"])
    assert speakers == {"ana", "bo", "li"}
    particular = ("I'm reading Dune by Frank Herbert.", 'Finally finished "the road".', "We ran 5k.",
                  "I met Óscar at the café.", "We drove to Lisbon's old town.",
                  "so, Ana and Cleo came")  # fmt: skip
    for said in particular:
        assert names_particular(said, speakers), said
    plain = ("Wow, that sounds great! I'm so happy for you.", "That was fun. Great idea, though.",
             "Thanks, Ana! I think I'll go.", "I loved Bo's cake", "Ana's cake was lovely.",
             "tea with Li and Bo", "")  # fmt: skip
    for said in plain:
        assert not names_particular(said, speakers), said
    # a capital that opens a sentence is not a name; one inside it is, unless it is a speaker's
    assert names_particular("Thanks, Ana!", frozenset())
    assert not names_particular("Thanks, Ana!", people(["Ana"]))
    # a name is the same name in either Unicode form
    decomposed = unicodedata.normalize("NFD", "Lucía")
    assert not names_particular(f"Thanks, {decomposed}!", people(["Lucía"]))
    assert not names_particular("Thanks, Lucía!", people([decomposed]))
    # a turn is read up to the cap
    assert not names_particular("x" * PARTICULAR_CAP + " Dune", speakers)
    assert names_particular("x" * (PARTICULAR_CAP - 6) + " Dune", speakers)
