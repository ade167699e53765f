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
    "absolutely|mostly|currently|now|definitely|honestly|kind of|sort of|rarely|generally|especially|"
    "no longer|almost|already|even|ever|hardly|probably|once|seriously|occasionally"
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
_IRREGULAR = {"are": "are", "were": "were", "have": "has", "do": "does", "go": "goes", "am": "is", "be": "is"}
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
    r"^((?:(?:so|well|ok|okay|and|then|btw|also|oh),? )?(?:[A-Z][\w’'-]+|[Mm]y [\w-]+(?: [A-Z][\w’'-]+)?)"
    r" (?:and|&) )I\b(?!')"
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
    "therapist|doctor|teacher|mentor|kid|baby|twin|stepmother|stepfather|sibling|buddy"
)
_PETS = (
    "dog|cat|puppy|kitten|parrot|rabbit|hamster|horse|pet|bird|fish|turtle|retriever|labrador|lab|poodle|"
    "beagle|terrier|spaniel|collie|husky|pug|dachshund|greyhound|corgi|shepherd|tabby|budgie|gecko|lizard|"
    "snake|tortoise|guinea pig|ferret|chinchilla|goldfish|cockatiel|bunny|pony"
)
_ORG_SUFFIX = (
    r"(?:Inc|Corp|Corporation|Ltd|LLC|GmbH|University|College|School|Bank|Hospital|Clinic|Labs|Group|"
    r"Company|Co|Institute|Academy|Studio|Studios|Foundation|Agency|Café|Cafe|Restaurant|Bakery)\b"
)
_TITLES = r"(?:Dr|Mr|Mrs|Ms|Prof|Professor)\.?"
NOT_NAMES = frozenset(
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
JOB_WORDS = _JOBS = (
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
    while first < last and words[first].strip("'") in NOT_NAMES:
        first += 1
    while last > first and words[last - 1].strip("'") in NOT_NAMES:
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

SUBJ = rf"(?P<s>{USER}|[A-Z][a-z]+(?: [A-Z][a-z]+)?|we)(?: (?:{_ADVERBS}))?"
OBJ = rf"(?P<o>{NAME})"
PHRASE = r"(?P<o>[\w'’ -]+?)"
_STOP = (
    r"but|because|since|so|when|while|who|which|where|as well|at|for|with|in|on|every|especially|including|"
    r"like|over|than|instead|rather|all|whenever|most|now|these|this|tbh|too|though|lol|haha"
)
END = rf"(?=$|[.,!?;:]| (?:and|{_STOP})\b| (?:on|in) \d)"
LIST_END = rf"(?=$|[^\w'’ ,-]| (?:{_STOP})\b| (?:on|in) \d|,? (?:pretty|way|so|really|just|mostly|which)\b)"
LIST = r"(?P<o>[\w'’ ,-]+?)"
# The words between a verb and the word a pattern needs next ("works as a … at"): bounded, or each
# of many starts would scan to the end of the text before failing (quadratic; finding V4).
GAP = "{1,100}?"
WORKING = r"(?:now |currently |still )?(?:works|is working|has worked|has been working)"

_KIN_TYPES = {
    "mom": "mother", "mum": "mother", "dad": "father", "fiancé": "partner", "fiancée": "partner",
    "fiancee": "partner", "co-worker": "colleague", "coworker": "colleague", "neighbour": "neighbor",
    "grandma": "grandmother", "grandpa": "grandfather", "best friend": "friend", "buddy": "friend",
    # one relation for an unmarried partner, one for people at work
    "girlfriend": "partner", "boyfriend": "partner", "fiance": "partner", "boss": "colleague",
    "manager": "colleague",
}  # fmt: skip


class _Needs:
    """A pattern that runs only where one of its words is: a cheap look (`in`) spares the regex
    engine a try at every word of a text that cannot match (most texts, and hostile ones)."""

    def __init__(self, pattern: re.Pattern[str], words: tuple[str, ...]) -> None:
        self.pattern, self.words = pattern, words

    def finditer(self, text: str) -> Iterator[re.Match[str]]:
        if any(word in text for word in self.words):
            return self.pattern.finditer(text)
        return iter(())


def _needs(pattern: re.Pattern[str], *words: str) -> _Needs:
    return _Needs(pattern, words)


_PATTERNS: list[tuple[str, re.Pattern[str] | _Needs]] = [
    ("LIVES_IN", re.compile(rf"{SUBJ} (?:now |currently |still )?(?:lives|is living|is based|has lived|has been living|lived) in {OBJ}")),
    ("LIVES_IN", re.compile(rf"{SUBJ} (?:just |recently |finally )?(?:moved|relocated|has moved|is moving) (?:back )?to {OBJ}")),
    ("FROM", re.compile(rf"{SUBJ} (?:is|comes|was) (?:originally )?from {OBJ}")),
    ("GREW_UP_IN", _needs(re.compile(rf"{SUBJ} (?:grew up|was raised|was born and raised)(?: (?:on|at|near|in) (?:a|an|the) [\w'-]+(?: [\w'-]+){{0,3}})? in {OBJ}"), 'grew up', 'raised')),
    ("GREW_UP_IN", _needs(re.compile(rf"{SUBJ} was born in {NAME},? (?:and )?raised in {OBJ}"), 'raised')),
    ("BORN_IN", re.compile(rf"{SUBJ} was born(?: and raised)? in {OBJ}")),
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
    ("DISLIKES", re.compile(rf"{SUBJ} (?:really )?(?:hates|dislikes|can't stand|can’t stand|doesn't like|doesn’t like|does not like|is not a (?:big )?fan of|is not (?:really )?into) {LIST}{LIST_END}")),
    ("LIKES", re.compile(rf"{SUBJ} (?:really |also |absolutely |totally )?(?:likes|loves|enjoys|adores|is into|is (?:a )?(?:big |huge )?fan of|is obsessed with|is passionate about) {LIST}{LIST_END}")),
    ("LIKES", _needs(re.compile(rf"{SUBJ}'s (?:all-time )?favou?rite [\w -]{{1,30}}? is {OBJ}"), 'favourite', 'favorite')),
    ("LEARNING", _needs(re.compile(rf"{SUBJ} (?:is taking|has been taking|takes|started taking) (?P<o>[\w-]+) (?:lessons|classes)\b"), 'lessons', 'classes')),
    ("STUDIES_AT", _needs(re.compile(rf"{SUBJ} is at {OBJ},? (?:doing|studying) (?:a |an |his |her |their |{USER}'s )?(?:PhD|phd|degree|master|masters|bachelor|studies|undergrad)"), 'PhD', 'phd', 'degree', 'master', 'bachelor', 'studies', 'undergrad')),
    ("STUDIES_AT", _needs(re.compile(rf"{SUBJ} is in (?:his |her |their |{USER}'s )?(?:first|second|third|fourth|fifth|final|last) year(?: of [\w ]{{1,30}}?)? at {OBJ}"), ' year')),
    ("TRIP", _needs(re.compile(rf"{SUBJ}'s (?:upcoming |next |big )?trip to {OBJ}"), 'trip to')),
    ("PREFERS", _needs(re.compile(rf"{SUBJ} (?:would|'d|’d) rather (?:take |have |do |go |eat |drink |watch |use )?(?:the |a )?(?P<o>[\w'’ -]{{2,30}}?) than\b"), 'rather')),
    ("USES", _needs(re.compile(rf"{SUBJ} (?:switched|moved over|migrated|changed) from {NAME} to {OBJ}"), ' from ')),
    ("LIVES_IN", _needs(re.compile(rf"{SUBJ} [\w' ,-]{{1,80}}?, (?:based|living|working remotely|working) (?:in|from) {OBJ}"), 'based', 'living', 'working')),
    ("PREFERS", re.compile(rf"{SUBJ} (?:usually |always )?prefers {LIST}{LIST_END}")),
    ("SPEAKS", re.compile(rf"{SUBJ} (?:speaks|is fluent in|is a native speaker of|grew up speaking) (?P<o>(?:{_LANGS})(?:(?:,| and| or)(?: a little| some| basic| a bit of)? (?:{_LANGS}))*)")),
    ("SPEAKS", _needs(re.compile(rf"{SUBJ}'s (?:mother tongue|native language|first language) is (?P<o>{_LANGS})"), 'tongue', 'native language', 'first language')),
    ("DIET", re.compile(rf"{SUBJ} (?:is|has been|became|went|turned|eats|is eating|has gone|has become|is doing|does|is on|follows|is going)(?: now| fully| strictly| mostly| a)* (?P<o>{_DIETS})\b")),
    ("LEARNING", re.compile(rf"{SUBJ} (?:is learning|learns|is studying|started learning|is picking up|is trying to learn|is taking (?:a )?(?:class|classes|course|lessons) in) (?P<o>(?:{_LANGS})(?:(?:,| and| or) (?:{_LANGS}))*)")),
    ("WORKS_AS", re.compile(rf"{SUBJ} is an? (?P<o>(?:[\w-]+ ){{0,3}}(?:{_JOBS}))(?: (?:at|for) {NAME})?{END}")),
    ("WORKS_AT", re.compile(rf"{SUBJ} is an? (?:[\w-]+ ){{0,3}}(?:{_JOBS}) (?:at|for) {OBJ}")),
    ("WORKS_AS", re.compile(rf"{SUBJ} (?:just |recently )?(?:joined|has joined|was hired by|got hired (?:at|by)) {NAME} as an? {PHRASE}{END}")),
    ("WORKS_AS", _needs(re.compile(rf"{SUBJ} (?:just |recently )?(?:started|began)(?: a new (?:job|gig|role|position))?(?: at {NAME})?(?: [\w ]{{1,30}}?)? as an? {PHRASE}{END}"), 'started', 'began')),
    ("WORKS_AT", _needs(re.compile(rf"{SUBJ} (?:just |recently )?(?:started|began)(?: a new (?:job|gig|role|position))?(?: as an? [\w' -]{{1,40}}?)? at {OBJ}"), 'started', 'began')),
    ("WORKS_AS", _needs(re.compile(rf"{SUBJ} (?:just |recently )?(?:got |was )?promoted to {PHRASE}{END}"), 'promoted')),
    ("WORKS_AT", _needs(re.compile(rf"{SUBJ} (?:just |recently )?(?:got |was )?promoted to [\w' -]{{1,40}}? at {OBJ}"), 'promoted')),
    ("WORKS_AS", _needs(re.compile(rf"{SUBJ} is (?:freelancing|working freelance|working) as an? {PHRASE}{END}"), 'freelancing', 'working')),
    ("STUDIES_AT", _needs(re.compile(rf"{SUBJ} is an? (?:[\w-]+ ){{0,3}}student (?:at|in) {OBJ}"), 'student')),
    ("LIVES_IN", _needs(re.compile(rf"{SUBJ} (?:just |recently |finally )?moved (?:into|to) (?:{USER}'s |a |an |the )?(?:new )?(?:flat|place|apartment|house|home|studio)(?: [\w' -]{{1,30}}?)? in {OBJ}"), 'moved')),
    ("LIVES_IN", _needs(re.compile(rf"{SUBJ} (?:lives|is living) in an? [\w' -]{{1,40}}? in {OBJ}"), 'lives in', 'living in')),
    ("PLAYS", re.compile(rf"{SUBJ} (?:plays|is playing|has been playing|is learning to play|learned to play|started playing) (?:the |a lot of |a bit of |some )?{LIST}{LIST_END}")),
    ("OWNS", re.compile(rf"{SUBJ} (?:drives|owns|bought|has|has got|got|just got) an? (?:new |old )?(?P<o>(?:[A-Za-z]*[A-Z][\w-]*)(?: [A-Z0-9][\w-]*)*)")),
    ("OWNS", _needs(re.compile(rf"{SUBJ} (?:owns|runs) an? (?:small |little |tiny )?(?P<o>bakery|cafe|café|restaurant|shop|store|bar|boat|sailboat|farm|house|flat|apartment|car|bike|motorbike)\b"), 'owns', 'runs')),
    ("USES", _needs(re.compile(rf"{SUBJ} (?:\w+ly |mostly |mainly |still |also |now |only )?(?:uses|is using|has been using|started using|switched to|went back to|relies on|swears by|banks with|codes in|is on) (?P<o>{NAME}(?:(?:, | and |, and | or ){NAME}){{0,4}})"), 'uses', 'using', 'switched to', 'went back', 'relies', 'swears', 'banks with', 'codes in', 'is on')),
    ("USES", _needs(re.compile(rf"{SUBJ} (?:does|keeps|writes|tracks|manages|edits|codes|takes) (?:all |most )?(?:of )?(?:{USER}'s )?[\w-]+(?: [\w-]+)? (?:in|with|on) (?P<o>{NAME}(?:(?:, | and |, and ){NAME}){{0,4}})"), ' in ', ' with ', ' on ')),
    ("USES", _needs(re.compile(rf"{SUBJ} (?:[\w'’]+ ){{0,4}}?(?:using|uses|use) (?P<o>{NAME}) (?:for|to) (?:{USER}'s |all |the )?(?:notes|tasks|budgeting|writing|coding|work|email|music|photos|backups|code|design|meetings|chat|messaging|banking|fitness|running|editing)\b"), 'using', 'uses', 'use ')),
    ("PLANS", _needs(re.compile(rf"{SUBJ} (?:is |are )?(?:planning|plans|is planning|are planning|is thinking about|are thinking about|thinking about|wants|is hoping|hopes) (?:to )?(?P<o>(?:a |an |doing a |doing an |getting a |buying a |buy a |get a )?[\w'’ -]{{3,60}}?){END}"), 'plan', 'thinking about', 'wants', 'hop')),
    ("TRIP", _needs(re.compile(rf"{SUBJ}(?: is| are|'s|’s|'re|’re) (?:going|heading|flying|off) to (?P<o>{NAME}){END}"), 'going to', 'heading to', 'flying to', 'off to')),
    ("TRIP", _needs(re.compile(rf"{SUBJ} (?:booked|has booked) (?:flights|a flight|tickets|a trip) to (?P<o>{NAME})"), 'booked')),
    ("WORKS_AT", _needs(re.compile(rf"{SUBJ} is (?:now |currently )?at {OBJ},? (?:doing (?!(?:a |an |his |her |their )?(?:PhD|phd|degree|master))|working|as)\b"), ' at ')),
]  # fmt: skip

_KIN_RELATION = re.compile(
    rf"\b{USER}'s (?P<k>{_KIN}|{_PETS})(?:,)? (?:is |was )?(?:called |named )?(?P<o>{NAME})"
)
_OWNER = rf"(?:{USER}|[Ww]e)(?:'ve| have| has)?"
_PET_RELATION = re.compile(
    rf"\b{_OWNER} (?:has|have|got|adopted|rescued) an? (?:[\w-]+ ){{0,2}}(?P<k>{_PETS}),? (?:called |named )?(?P<o>{NAME})"
)
_PETS_NAMED = re.compile(
    rf"\b{_OWNER} (?:has|have|got|adopted) (?:two|three|four|\d+) (?:[\w-]+ )?(?:{_PETS})s?(?:,| called| named|:) (?P<o>{NAME}(?:(?:, | and |, and ){NAME}){{1,8}})"
)
_MORE_PETS = re.compile(rf"\b(?:and|,) an? (?:[\w-]+ )?(?:{_PETS}),? (?:called |named )?(?P<o>{NAME})")
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
# Two subjects of one verb: "Sam and User live in …", "User's mum Maria and User's dad José live in …".
_TOGETHER = re.compile(
    rf"(?:{USER}'s [\w-]+ )?(?P<a>{USER}|[A-Z][\w’'-]+) and (?:{USER}'s [\w-]+ )?(?P<b>{USER}|[A-Z][\w’'-]+)"
    rf"(?: (?:still|now|both|also|all|currently))? (?P<v>live|work|are|play|speak|study|own|have|love|like)"
    r"(?P<rest> [^.!?;]{1,200})"
)
# Objects that are a clause or a filler, not a thing: "it here", "that it tastes", "pretty much".
_VAGUE_OBJECT = re.compile(
    r"^(?:it|that|this|them|him|her|there|here|to think|pretty much|a lot|so much|anything|everything|"
    r"nothing|something|when|how|what|the fact|User's \w+ \w+|to think|think|retired|former|ex-)\b",
    re.I,
)
_PRONOUNS = frozenset({"He", "She", "They", "We", "It", "This", "That", "There", "You"})


def _object(raw: str) -> str:
    value = raw.strip(" .,'’-")
    value = re.sub(r"^(?:the|a|an|some|to) ", "", value, flags=re.IGNORECASE)
    words = value.split()
    return " ".join(words[:6])


_QUANTITY = re.compile(r"^(?:a little|a bit of|a lot of|lots of|some|basic|a few)\s+", re.I)
_DOUBLED = frozenset("get run stop shop swim sit set put plan begin".split())


def _plan(obj: str) -> str:
    """A plan as a noun phrase: "buy a house" -> "buying a house", "a trip to Peru" -> "trip to Peru"."""
    words = obj.split()
    if not words:
        return obj
    verb = words[0].lower()
    if verb in _DOUBLED:
        words[0] = verb + verb[-1] + "ing"
    elif verb in _BASE_VERBS:
        words[0] = (verb[:-1] if verb.endswith("e") and not verb.endswith("ee") else verb) + "ing"
    return " ".join(words)


# Verbs a plan opens with ("to buy a house"): they become "buying", "learning", …
_BASE_VERBS = frozenset(
    """buy learn move start take visit see get run build write open launch finish try adopt sell
    find travel go make do quit change switch retire renovate apply study train save plan""".split()
)


#: Relations whose object may be a list ("tea, coffee and cake"): one relation per item.
_LISTED = frozenset({"LIKES", "DISLIKES", "PREFERS", "ALLERGIC_TO", "SPEAKS", "LEARNING", "PLAYS", "USES"})


def relations(sentence: str) -> list[Relation]:
    """Relations a rewritten sentence states, with "User" as the user."""
    found: list[Relation] = []

    def add(subject: str, kind: str, obj: str) -> None:
        subject = USER if subject in ("We", "we") else subject  # "we" includes the user
        obj = _object(obj)
        if obj and obj != subject and obj.casefold() not in ("it", "that", "this", "them", "him", "her"):
            relation = Relation(_clean(subject) or subject, kind, obj)
            if relation not in found:
                found.append(relation)

    def stated(text: str) -> None:
        """The relations `_PATTERNS` read in `text`: the sentence itself, or what a sentence says of
        each of several subjects ("Rui lives in Braga" from "my parents, Rui and Helena, live …")."""
        for kind, pattern in _PATTERNS:
            for match in pattern.finditer(text):
                subject, obj = match.group("s"), match.group("o")
                if kind in _LISTED:
                    parts = re.split(r",\s*(?:and\s+|or\s+)?|\s+(?:and|or)\s+", obj)
                    for i, part in enumerate(parts):
                        part = _QUANTITY.sub("", part.strip()).removesuffix(" online").strip()
                        if i == 0 or len(part.split()) <= 3:  # a later "part" of many words is a clause
                            add(subject, kind, part)
                elif kind == "PLANS":
                    add(subject, kind, _plan(obj))
                elif kind == "TRIP":
                    add(subject, "PLANS", f"trip to {_clean(obj)}")
                else:
                    add(subject, kind, _clean(obj) if kind not in ("WORKS_AS", "PLAYS") else obj)

    for match in _KIN_RELATION.finditer(sentence):
        kin = match.group("k").lower()
        kin = _KIN_TYPES.get(kin, kin)
        name = _clean(match.group("o"))
        if not name or name in NOT_NAMES:
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
            if name and name not in NOT_NAMES:
                add(USER, f"HAS_{_KIN_PLURAL[match.group('k')]}", name)
                if match.group("v"):  # "… live in Braga" said of each: "Rui lives in Braga"
                    stated(f"{name} {_third_person(match.group('v'))}{match.group('rest')}")
    for match in _PETS_NAMED.finditer(sentence):  # "two dogs, Rex and Bella"
        for name in re.split(r",\s*(?:and\s+)?|\s+and\s+", match.group("o")):
            add(USER, "HAS_PET", _clean(name))
    for i, match in enumerate(_PET_RELATION.finditer(sentence)):
        add(USER, "HAS_PET", _clean(match.group("o")))
        if i == 0:  # "…, and a cat named Tom": a scan after each later pet would find none new
            for more in _MORE_PETS.finditer(sentence, match.end()):
                add(USER, "HAS_PET", _clean(more.group("o")))
    stated(sentence)
    for match in _TOGETHER.finditer(sentence) if " and " in sentence else ():  # "Sam and User live in …"
        for who in (match.group("a"), match.group("b")):
            stated(f"{who} {_third_person(match.group('v'))}{match.group('rest')}")
    students = {r.subject for r in found if r.type == "WORKS_AS" and r.object.split()[-1] == "student"}
    found = [
        Relation(r.subject, "STUDIES_AT", r.object) if r.type == "WORKS_AT" and r.subject in students else r
        for r in found
        if not (r.type == "WORKS_AS" and r.subject in students)
    ]
    found = list(dict.fromkeys(found))
    # A pronoun the message did not resolve is nobody in the graph ("She loves jazz").
    return [r for r in found if r.subject not in _PRONOUNS and not _VAGUE_OBJECT.match(r.object)]
