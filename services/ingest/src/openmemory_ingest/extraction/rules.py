"""The local extractor's rules: facts about the user, typed entities, and relations.

No network and no model: first-person sentences are rewritten as facts about "User", names are typed
by the words around them, and common relations ("lives in", "works at", "is allergic to", …) are read
with patterns. Types whose new value replaces the old one are listed in `FUNCTIONAL`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

USER = "User"

#: A person has one current value of these: a new one closes the old ("moved to Berlin" ends
#: "lives in Lisbon").
FUNCTIONAL = frozenset({"LIVES_IN", "WORKS_AT", "WORKS_AS", "MARRIED_TO", "STUDIES_AT", "DIET"})


@dataclass(frozen=True)
class Entity:
    name: str
    kind: str  # person, pet, place, organization, product, language, date, other


@dataclass(frozen=True)
class Relation:
    subject: str
    type: str
    object: str


# ---- first person -> User -------------------------------------------------------------------

_ADVERBS = (
    "really|also|usually|always|never|often|sometimes|just|still|recently|finally|actually|totally|"
    "absolutely|mostly|currently|now|definitely|honestly|kind of|sort of|rarely|generally|especially"
)
_KEEP = {
    "can", "could", "should", "would", "might", "must", "may", "shall", "did", "went", "had", "was",
    "got", "made", "took", "saw", "met", "ran", "began", "bought", "came", "felt", "found", "gave",
    "kept", "left", "lost", "paid", "said", "sent", "spent", "told", "thought", "won", "wrote", "knew",
    "grew", "drove", "ate", "flew", "swam", "sang", "taught", "caught", "brought", "built", "became",
    "broke", "spoke", "woke", "wore", "chose", "froze", "rode", "stole", "drew", "threw", "blew", "fell",
    "held", "hung", "sat", "stood", "understood", "forgot", "lent", "meant", "led", "fed", "fled", "dug",
    "stuck", "struck", "swung", "shot", "slept", "wept", "sold", "heard", "fought", "sought",
    "gotten", "done", "been", "seen", "ought",
}  # fmt: skip
# Verbs in -ed that are present tense ("I need", "I feed"), not past.
_PRESENT_IN_ED = frozenset(
    "need feed bleed breed speed succeed proceed exceed heed seed weed shed wed embed".split()
)
_IRREGULAR = {"have": "has", "do": "does", "go": "goes", "am": "is", "be": "is"}
# Any other word in -ly before a verb is an adverb ("I barely sleep"), not the verb: the verbs in -ly
# are these.
_LY_VERBS = "fly|apply|rely|reply|supply|ally|bully|tally|multiply|comply|imply|sully|rally|dally"
_LY_ADVERB = rf"(?!(?:{_LY_VERBS})\b)[a-z]+ly"


def _third_person(verb: str) -> str:
    low = verb.lower()
    if low in _KEEP or (low.endswith("ed") and low not in _PRESENT_IN_ED) or low.endswith("n't"):
        return verb
    if low in _IRREGULAR:
        return _IRREGULAR[low]
    if re.search(r"(s|sh|ch|x|z|o)$", low):
        return verb + "es"
    if re.search(r"[^aeiou]y$", low):
        return verb[:-1] + "ies"
    return verb + "s"


_FIRST_PERSON = [
    (re.compile(r"\b(?:I'm|I’m|Im|I am)\b", re.IGNORECASE), f"{USER} is"),
    (re.compile(r"\b(?:I've|I’ve|I have)\b", re.IGNORECASE), f"{USER} has"),
    (re.compile(r"\b(?:I'd|I’d)\b", re.IGNORECASE), f"{USER} would"),
    (re.compile(r"\b(?:I'll|I’ll|I will)\b", re.IGNORECASE), f"{USER} will"),
    (re.compile(r"\bI (?:don't|don’t|dont|do not)\b", re.IGNORECASE), f"{USER} doesn't"),
    (re.compile(r"\bI (?:can't|can’t|cant|cannot)\b", re.IGNORECASE), f"{USER} can't"),
]


# A sentence that opens with "<someone> and I": "Lena and I", "so my wife and I", "Tom & I".
_WITH_SOMEONE = re.compile(
    r"^((?:(?:so|well|ok|okay|and|then|btw|also|oh),? )?(?:[A-Z][\w’'-]+|[Mm]y [\w-]+) (?:and|&) )I\b(?!')"
)


def first_person_to_user(sentence: str) -> str:
    """ "I'm vegetarian" -> "User is vegetarian"; "my sister" -> "User's sister"."""
    text = sentence
    for pattern, replacement in _FIRST_PERSON:
        text = pattern.sub(replacement, text)

    def verb(match: re.Match[str]) -> str:
        adverb = match.group(1) or ""
        return f"{USER} {adverb}{_third_person(match.group(2))}"

    text = _WITH_SOMEONE.sub(rf"\g<1>{USER}", text)  # "Lena and I split up": plural, the verb stays
    text = re.sub(rf"\b[Ii] ((?:(?:{_ADVERBS}|{_LY_ADVERB}) ){{0,2}})([a-zA-Z']+)", verb, text)
    text = re.sub(r"\b(?:my|My|MY)\b", f"{USER}'s", text)
    text = re.sub(r"\b(?:mine)\b", f"{USER}'s", text)
    text = re.sub(r"\b(?:myself|me)\b", USER, text)
    return text


# ---- entities ------------------------------------------------------------------------------

NAME = r"[A-Z][\w’'-]*(?:\s+(?:of |de |van |von |da |del |la |le )?[A-Z][\w’'-]*)*"
_KIN = (
    "sister|brother|mother|mom|mum|father|dad|wife|husband|partner|girlfriend|boyfriend|friend|son|"
    "daughter|cousin|aunt|uncle|boss|manager|colleague|coworker|co-worker|roommate|neighbor|neighbour|"
    "grandma|grandmother|grandpa|grandfather|niece|nephew|fiance|fiancee|fiancé|fiancée|best friend|"
    "therapist|doctor|teacher|mentor|kid|baby|twin|stepmother|stepfather|sibling"
)
_PETS = "dog|cat|puppy|kitten|parrot|rabbit|hamster|horse|pet|bird|fish|turtle"
_ORG_SUFFIX = (
    r"(?:Inc|Corp|Corporation|Ltd|LLC|GmbH|University|College|School|Bank|Hospital|Clinic|Labs|Group|"
    r"Company|Co|Institute|Academy|Studio|Studios|Foundation|Agency|Café|Cafe|Restaurant|Bakery)\b"
)
_TITLES = r"(?:Dr|Mr|Mrs|Ms|Prof|Professor)\.?"
_NOT_NAMES = frozenset(
    """User I The A An This That These Those It We You He She They His Her Their Our Your And But Or So
    If When While Also Then There Here Please Thanks Yes No Ok Okay Hi Hello Hey What Where Who Why How
    Which Monday Tuesday Wednesday Thursday Friday Saturday Sunday January February March April May June
    July August September October November December Today Tomorrow Yesterday Last Next Every One Two Three
    Just Still Actually Sometimes Usually Recently Finally My Me Mine Oh Wow Well Anyway Btw Lol Haha Sure
    Good Great Nice Cool Love Remember Note On In At For With To From Of By After Before During Since Not
    Weekend Christmas Easter""".split()
)
LANGUAGES = frozenset(
    """English Spanish French German Italian Portuguese Dutch Swedish Norwegian Danish Finnish Polish
    Russian Ukrainian Greek Turkish Arabic Hebrew Hindi Bengali Urdu Chinese Mandarin Cantonese Japanese
    Korean Vietnamese Thai Indonesian Malay Swahili Czech Hungarian Romanian Catalan Basque Irish Welsh
    Tagalog Persian Farsi""".split()
)

_LANGS = "|".join(sorted(LANGUAGES))
PROFESSIONS = (
    "nurse|doctor|teacher|engineer|software engineer|developer|designer|lawyer|accountant|architect|"
    "chef|student|writer|artist|photographer|musician|scientist|researcher|pharmacist|dentist|"
    "electrician|plumber|firefighter|police officer|pilot|journalist|consultant|programmer|"
    "data scientist|product manager|therapist|counselor|veterinarian|vet|mechanic|farmer|baker"
)

_DIETS = "vegetarian|vegan|pescatarian|pescetarian|keto|paleo|gluten-free|dairy-free|flexitarian|carnivore|omnivore"

# The last word of a job title ("a backend engineer at Stripe"): a title is a few words ending in one.
_JOBS = (
    PROFESSIONS + "|manager|analyst|administrator|technician|specialist|officer|assistant|coordinator|"
    "director|lead|intern|founder|editor|translator|professor|lecturer|tutor|surgeon|paramedic|"
    "carpenter|driver|cashier|waiter|waitress|bartender|barista|receptionist|recruiter|marketer|"
    "economist|statistician|biologist|chemist|physicist|psychologist|physiotherapist|optometrist|"
    "sales rep|salesperson|agent|broker|banker|clerk|secretary|librarian|curator|producer|animator"
)

# Two kinds of name are found by functions, not patterns: as `({NAME}) said` or `({NAME} Corp)`
# a pattern retries from every word of a run of capitalised words and rescans the rest of the run
# each time, which is quadratic in the run's length (finding V4). Every start inside one run
# extends to the same end, so one look per run gives what the pattern would.
_NAME_RUN = re.compile(rf"\b{NAME}")
_CAPITALISED = re.compile(r"[A-Z][\w’'-]*")
_SPEAKS_OR_JOINS = re.compile(rf" (?:and {USER}|said|told|asked|is {USER}'s)\b")
_ORG_WORD = re.compile(_ORG_SUFFIX)


def _people_by_what_follows(sentence: str) -> Iterator[str]:
    r"""What `finditer(rf"\b({NAME}) (?:and {USER}|said|told|asked|is {USER}'s)\b")` finds, in
    linear time. A name cannot take in " said" or " and …", so only a run's end can be followed by it."""
    pos = 0
    while (run := _NAME_RUN.search(sentence, pos)) is not None:
        after = _SPEAKS_OR_JOINS.match(sentence, run.end())
        if after is not None:
            yield run.group()
        pos = run.end() if after is None else after.end()


def _organizations(sentence: str) -> Iterator[str]:
    r"""What `finditer(rf"\b({NAME} {_ORG_SUFFIX})")` finds ("Acme Corp"), in linear time. The
    pattern keeps the longest name in a run that " " and a suffix follow, so the run's words are
    tried from its last; a start later in a run has fewer names to try, so none succeeds either."""
    pos = 0
    while (run := _NAME_RUN.search(sentence, pos)) is not None:
        pos = run.end()
        for word in reversed(list(_CAPITALISED.finditer(sentence, run.start(), run.end()))):
            end = word.end()
            suffix = _ORG_WORD.match(sentence, end + 1) if sentence[end : end + 1] == " " else None
            if suffix is not None:
                yield sentence[run.start() : suffix.end()]
                pos = suffix.end()
                break


_Finder = re.Pattern[str] | Callable[[str], Iterator[str]]

_TYPED: list[tuple[str, _Finder]] = [
    ("pet", re.compile(rf"\b(?:{_PETS})(?:,)? (?:is |was )?(?:called |named )({NAME})")),
    ("person", re.compile(rf"\b(?:{_KIN})(?:,)? (?:is |was )?(?:called |named )?({NAME})")),
    ("person", re.compile(rf"\b(?:named|called) ({NAME})")),
    ("person", re.compile(rf"\b({_TITLES} {NAME})")),
    ("person", re.compile(rf"\b(?:met|with|told|asked|visited|texted|called|married|dating) ({NAME})")),
    ("person", _people_by_what_follows),
    ("organization", re.compile(rf"\b(?:works?|worked|working|job|internship|intern) (?:at|for) ({NAME})")),
    ("organization", re.compile(rf"\b(?:joined|joins|studies at|studied at|studying at|hired by) ({NAME})")),
    ("organization", _organizations),
    ("place", re.compile(rf"\b(?:lives?|lived|living|based|born|grew up|stayed|staying) in ({NAME})")),
    ("place", re.compile(rf"\b(?:moved|moving|move|trip|travel(?:l?ed|l?ing)?|flew|fly|flying|went|going|relocated|back) to ({NAME})")),
    ("place", re.compile(rf"\b(?:from|visit|visited|visiting|in|near|around) ({NAME})")),
    ("product", re.compile(r"\b(?:uses?|used|using|bought|buy|buying|drives?|drove|owns?|got an?|new) ((?:[A-Za-z]*[A-Z][\w-]*)(?: [A-Z0-9][\w-]*)*)")),
]  # fmt: skip


def _clean(name: str) -> str:
    words = name.replace("’", "'").split()
    first, last = 0, len(words)  # indices, not slices: a run of names can be thousands of words
    while first < last and words[first].strip("'") in _NOT_NAMES:
        first += 1
    while last > first and words[last - 1].strip("'") in _NOT_NAMES:
        last -= 1
    joined = " ".join(words[first:last])
    return joined.removesuffix("'s").strip(" -'")


def _found_by(finder: _Finder, sentence: str) -> Iterator[str]:
    if isinstance(finder, re.Pattern):
        return (match.group(1) for match in finder.finditer(sentence))
    return finder(sentence)


def _opens_sentence(text: str, at: int) -> bool:
    r"""Whether `text[:at]` is empty or ends a sentence: `re.search(r"(?:^|[.!?]\s+)$", text[:at])`,
    without copying and scanning the prefix once per name (quadratic in a long text)."""
    if at == 0 or (at == 1 and text[0] == "\n"):
        return True
    i = at
    while i > 0 and text[i - 1].isspace():
        i -= 1
    return 0 < i < at and text[i - 1] in ".!?"


def typed_entities(sentence: str) -> list[Entity]:
    """Names in a sentence, typed by the words around them; untyped capitalised names are "other"."""
    found: dict[str, Entity] = {}
    for kind, finder in _TYPED:
        for raw in _found_by(finder, sentence):
            name = _clean(raw)
            if len(name) < 2 or name == USER or name in found:
                continue
            found[name] = Entity(name, "language" if name in LANGUAGES else kind)
    for match in re.finditer(NAME, sentence):
        name = _clean(match.group(0))
        if _opens_sentence(sentence, match.start()) and " " not in name and name == match.group(0):
            continue  # "Loved it." — a capital that only marks a sentence's start
        if len(name) >= 2 and name != USER and not any(name in e or e in name for e in found):
            found[name] = Entity(name, "language" if name in LANGUAGES else "other")
    return list(found.values())


# ---- relations -------------------------------------------------------------------------------

SUBJ = rf"(?P<s>{USER}|[A-Z][a-z]+(?: [A-Z][a-z]+)?)(?: (?:{_ADVERBS}))?"
OBJ = rf"(?P<o>{NAME})"
PHRASE = r"(?P<o>[\w'’ -]+?)"
_STOP = r"but|because|since|so|when|while|who|which|where|as well|at|for|with|in|on|every|especially|including|like"
END = rf"(?=$|[.,!?;:]| (?:and|{_STOP})\b| (?:on|in) \d)"
LIST_END = rf"(?=$|[.!?;:]| (?:{_STOP})\b| (?:on|in) \d)"
LIST = r"(?P<o>[\w'’ ,-]+?)"
# The words between a verb and the word a pattern needs next ("works as a … at"): bounded, or each
# of many starts would scan to the end of the text before failing (quadratic; finding V4).
GAP = "{1,100}?"
WORKING = r"(?:now |currently |still )?(?:works|is working|has worked|worked|has been working|had been working|used to work)"

_KIN_TYPES = {
    "mom": "mother", "mum": "mother", "dad": "father", "fiancé": "fiance", "fiancée": "fiance",
    "fiancee": "fiance", "co-worker": "coworker", "neighbour": "neighbor", "grandma": "grandmother",
    "grandpa": "grandfather", "best friend": "friend",
}  # fmt: skip

_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("LIVES_IN", re.compile(rf"{SUBJ} (?:now |currently |still )?(?:lives|is living|is based|has lived|has been living|lived) in {OBJ}")),
    ("LIVES_IN", re.compile(rf"{SUBJ} (?:just |recently |finally )?(?:moved|relocated|has moved|is moving) (?:back )?to {OBJ}")),
    ("FROM", re.compile(rf"{SUBJ} (?:is|comes|was) (?:originally )?from {OBJ}")),
    ("GREW_UP_IN", re.compile(rf"{SUBJ} grew up in {OBJ}")),
    ("BORN_IN", re.compile(rf"{SUBJ} was born in {OBJ}")),
    ("WORKS_AT", re.compile(rf"{SUBJ} (?:{WORKING}|started working|started a new job|got a job|took a job) (?:at|for) {OBJ}")),
    ("WORKS_AT", re.compile(rf"{SUBJ} {WORKING} as an? [\w' -]{GAP} (?:at|for) {OBJ}")),
    ("WORKS_AT", re.compile(rf"{SUBJ} {WORKING} (?:remotely |part-time |full-time )?(?:at|for) an? [\w -]{GAP} (?:called|named) {OBJ}")),
    ("WORKS_AT", re.compile(rf"{SUBJ} (?:just |recently )?(?:joined|has joined|was hired by|got hired (?:at|by)) {OBJ}")),
    ("WORKS_AS", re.compile(rf"{SUBJ} {WORKING} as an? {PHRASE}{END}")),
    ("WORKS_AS", re.compile(rf"{SUBJ} {WORKING} (?:at|for) {NAME} as an? {PHRASE}{END}")),
    ("WORKS_AS", re.compile(rf"{SUBJ} is an? (?P<o>(?:{PROFESSIONS}))\b")),
    ("STUDIES_AT", re.compile(rf"{SUBJ} (?:studies|is studying|studied|goes to school|is a student)(?: [\w ]{GAP})? at {OBJ}")),
    ("ALLERGIC_TO", re.compile(rf"{SUBJ} (?:is|am|are|was) (?:severely |very |mildly )?allergic to {LIST}{LIST_END}")),
    ("MARRIED_TO", re.compile(rf"{SUBJ} (?:is|got|has been) (?:happily )?married to {OBJ}")),
    ("DISLIKES", re.compile(rf"{SUBJ} (?:really )?(?:hates|dislikes|can't stand|can’t stand|doesn't like|doesn’t like|does not like|is not a fan of) {LIST}{LIST_END}")),
    ("LIKES", re.compile(rf"{SUBJ} (?:really |also |absolutely |totally )?(?:likes|loves|enjoys|adores|is into|is a (?:big |huge )?fan of|is obsessed with|is passionate about) {LIST}{LIST_END}")),
    ("PREFERS", re.compile(rf"{SUBJ} (?:usually |always )?prefers {LIST}{LIST_END}")),
    ("SPEAKS", re.compile(rf"{SUBJ} (?:speaks|is fluent in|is a native speaker of) (?P<o>(?:{_LANGS})(?:(?:,| and| or) (?:{_LANGS}))*)")),
    ("DIET", re.compile(rf"{SUBJ} (?:is|has been|became|went|turned|eats|is eating|has gone|has become)(?: now| fully| strictly| mostly| a)* (?P<o>{_DIETS})\b")),
    ("LEARNING", re.compile(rf"{SUBJ} (?:is learning|learns|is studying|started learning|is taking (?:a )?(?:class|classes|course|lessons) in) (?P<o>(?:{_LANGS})(?:(?:,| and| or) (?:{_LANGS}))*)")),
    ("WORKS_AS", re.compile(rf"{SUBJ} is an? (?P<o>(?:[\w-]+ ){{0,3}}(?:{_JOBS}))(?: (?:at|for) {NAME})?{END}")),
    ("WORKS_AT", re.compile(rf"{SUBJ} is an? (?:[\w-]+ ){{0,3}}(?:{_JOBS}) (?:at|for) {OBJ}")),
    ("WORKS_AS", re.compile(rf"{SUBJ} (?:just |recently )?(?:joined|has joined|was hired by|got hired (?:at|by)) {NAME} as an? {PHRASE}{END}")),
    ("PLAYS", re.compile(rf"{SUBJ} (?:plays|is learning to play|learned to play|started playing) (?:the )?{PHRASE}{END}")),
    ("OWNS", re.compile(rf"{SUBJ} (?:drives|owns|bought|has) an? (?:new |old )?(?P<o>(?:[A-Za-z]*[A-Z][\w-]*)(?: [A-Z0-9][\w-]*)*)")),
]  # fmt: skip

_KIN_RELATION = re.compile(
    rf"\b{USER}'s (?P<k>{_KIN}|{_PETS})(?:,)? (?:is |was )?(?:called |named )?(?P<o>{NAME})"
)
_PET_RELATION = re.compile(rf"\b{USER} (?:has|got|adopted) an? (?P<k>{_PETS}) (?:called|named) (?P<o>{NAME})")
_PETS_NAMED = re.compile(
    rf"\b{USER} (?:has|got|adopted) (?:two|three|four|\d+) (?:{_PETS})s?(?:,| called| named|:) (?P<o>{NAME}(?:(?:, | and |, and ){NAME}){{1,8}})"
)
_MORE_PETS = re.compile(rf"\b(?:and|,) an? (?:{_PETS}) (?:called|named) (?P<o>{NAME})")
_KIN_PLURAL = {
    "parents": "PARENT", "kids": "CHILD", "children": "CHILD", "sons": "SON", "daughters": "DAUGHTER",
    "brothers": "BROTHER", "sisters": "SISTER", "siblings": "SIBLING", "grandparents": "GRANDPARENT",
    "cousins": "COUSIN", "friends": "FRIEND", "twins": "TWIN",
}  # fmt: skip
# "User's parents, Rui and Helena, live in Braga": each name is kin, and the rest is said of each.
_KIN_NAMED = re.compile(
    rf"\b{USER}'s (?P<k>{'|'.join(_KIN_PLURAL)}),? (?P<o>{NAME}(?:(?:, | and |, and | & ){NAME}){{1,8}})"
    rf"(?:,? (?P<v>[a-z]+)(?P<rest> [^.!?;]{{1,200}}))?"
)
_SPOUSE = {"wife", "husband"}
_PRONOUNS = frozenset({"He", "She", "They", "We", "It", "This", "That", "There", "You"})


def _object(raw: str) -> str:
    value = raw.strip(" .,'’-")
    value = re.sub(r"^(?:the|a|an|some|to) ", "", value, flags=re.IGNORECASE)
    words = value.split()
    return " ".join(words[:6])


def relations(sentence: str) -> list[Relation]:
    """Relations a rewritten sentence states, with "User" as the user."""
    found: list[Relation] = []

    def add(subject: str, kind: str, obj: str) -> None:
        obj = _object(obj)
        if obj and obj != subject and obj.casefold() not in ("it", "that", "this", "them", "him", "her"):
            relation = Relation(_clean(subject) or subject, kind, obj)
            if relation not in found:
                found.append(relation)

    for match in _KIN_RELATION.finditer(sentence):
        kin = match.group("k").lower()
        kin = _KIN_TYPES.get(kin, kin)
        name = _clean(match.group("o"))
        if not name or name in _NOT_NAMES:
            continue
        if kin in _SPOUSE:
            add(USER, "MARRIED_TO", name)
        elif re.fullmatch(_PETS, kin):
            add(USER, "HAS_PET", name)
        else:
            add(USER, f"HAS_{kin.upper().replace(' ', '_')}", name)
    for match in _KIN_NAMED.finditer(sentence):
        names = [_clean(n) for n in re.split(r",\s*(?:and\s+)?|\s+(?:and|&)\s+", match.group("o"))]
        for name in names:
            if name and name not in _NOT_NAMES:
                add(USER, f"HAS_{_KIN_PLURAL[match.group('k')]}", name)
                if match.group("v"):  # "… live in Braga" said of each: "Rui lives in Braga"
                    said = f"{name} {_third_person(match.group('v'))}{match.group('rest')}"
                    for kind, pattern in _PATTERNS:
                        for each in pattern.finditer(said):
                            add(each.group("s"), kind, _clean(each.group("o")))
    for match in _PETS_NAMED.finditer(sentence):  # "two dogs, Rex and Bella"
        for name in re.split(r",\s*(?:and\s+)?|\s+and\s+", match.group("o")):
            add(USER, "HAS_PET", _clean(name))
    for i, match in enumerate(_PET_RELATION.finditer(sentence)):
        add(USER, "HAS_PET", _clean(match.group("o")))
        if i == 0:  # "…, and a cat named Tom": a scan after each later pet would find none new
            for more in _MORE_PETS.finditer(sentence, match.end()):
                add(USER, "HAS_PET", _clean(more.group("o")))
    for kind, pattern in _PATTERNS:
        for match in pattern.finditer(sentence):
            subject = match.group("s")
            obj = match.group("o")
            if kind in ("LIKES", "DISLIKES", "PREFERS", "ALLERGIC_TO", "SPEAKS", "LEARNING"):
                for part in re.split(r",\s*|\s+(?:and|or)\s+", obj):
                    add(subject, kind, part)
            else:
                add(subject, kind, _clean(obj) if kind not in ("WORKS_AS", "PLAYS") else obj)
    # A pronoun the message did not resolve is nobody in the graph ("She loves jazz").
    return [r for r in found if r.subject not in _PRONOUNS]
