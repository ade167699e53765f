"""Categories by rules: OpenMemory's twenty, chosen by the words a fact uses."""

from __future__ import annotations

import re

# OpenMemory's categories, each with the words that signal it (a word also in its inflected forms;
# `*` marks a stem: any word that begins with it).
RULES: dict[str, tuple[str, ...]] = {
    "personal": ("name is", "born", "birthday", "years old", "pronoun", "nickname"),
    "relationships": ("wife", "husband", "partner", "girlfriend", "boyfriend", "married", "friend", "sister",
                      "brother", "mother", "father", "mom", "dad", "son", "daughter", "cousin", "aunt", "uncle",
                      "grandm*", "grandp*", "family", "kids", "children", "niece", "nephew", "fiance", "colleague"),
    "preferences": ("like", "love", "prefer", "favourite", "favorite", "enjoy", "hate", "dislike", "fan of",
                    "can't stand", "into"),
    "health": ("allerg*", "vegetarian", "vegan", "diet", "doctor", "sick", "ill", "pain", "medic*", "gym",
               "run", "running", "workout", "sleep", "therapy", "diabet*", "pregnan*", "injur*", "hospital",
               "gluten", "lactose", "asthma", "anxiety", "yoga", "fitness", "marathon"),
    "travel": ("travel", "trip", "flight", "fly", "flew", "visit", "vacation", "holiday", "hotel", "abroad",
               "passport", "moved to", "camping", "road trip"),
    "work": ("work", "job", "boss", "manager", "office", "career", "promot*", "salary", "hired", "quit",
             "company", "client", "meeting", "colleague", "engineer", "nurse", "teacher", "developer"),
    "education": ("study", "studies", "school", "university", "college", "degree", "course", "class",
                  "exam", "learn", "student", "phd", "master", "graduat*"),
    "projects": ("project", "building", "side project", "launch", "prototype", "repo", "startup"),
    "ai_ml_technology": ("ai", "machine learning", "llm", "model", "neural", "gpt", "claude", "embedding"),
    "technical_support": ("bug", "error", "crash", "install", "fix", "broken", "debug", "not working"),
    "finance": ("money", "bank", "invest*", "stock", "budget", "loan", "mortgage", "rent", "saving", "tax",
                "salary", "debt", "crypto", "paid"),
    "shopping": ("buy", "bought", "order", "purchase", "shop", "store", "amazon", "price"),
    "legal": ("lawyer", "contract", "court", "legal", "visa", "lawsuit", "license"),
    "entertainment": ("movie", "film", "show", "series", "music", "band", "song", "concert", "game", "book",
                      "novel", "netflix", "podcast", "play", "guitar", "piano", "painting", "paint"),
    "messages": ("message", "email", "text me", "call me", "remind"),
    "customer_support": ("support ticket", "customer service", "refund", "complaint"),
    "product_feedback": ("feedback", "feature request", "would be nice", "should support"),
    "news": ("news", "election", "headline"),
    "organization": ("calendar", "schedule", "todo", "to-do", "deadline", "plan to", "appointment", "agenda"),
    "goals": ("goal", "want to", "plan to", "hope to", "trying to", "aim to", "dream", "resolution", "someday"),
}  # fmt: skip


def _forms(entry: str) -> str:
    """A pattern for one entry: a phrase as it is; a word with its inflections (likes, liked,
    liking, studies, shopping, renter, illness); a stem marked with `*` as any word it begins."""
    if entry.endswith("*"):
        return re.escape(entry[:-1]) + r"\w*"
    if " " in entry or not entry.isalpha():
        return re.escape(entry)
    forms = [re.escape(entry) + r"(?:s|es|ed|d|ing|er|ers|ment|ness)?"]
    if entry.endswith("e"):
        forms.append(re.escape(entry[:-1]) + r"(?:ing|ed|er|ers)")
    if entry.endswith("y"):
        forms.append(re.escape(entry[:-1]) + r"(?:ies|ied)")
    if entry[-1] not in "aeiouwy":
        forms.append(re.escape(entry + entry[-1]) + r"(?:ing|ed|er|ers)")
    return "|".join(forms)


#: One pattern per category, matched on whole words: "pain" is not in "Spain" or "painting", nor
#: "ill" in "will", nor "rent" in "parent".
_PATTERNS = {
    name: re.compile(r"\b(?:" + "|".join(_forms(w) for w in words) + r")\b") for name, words in RULES.items()
}


def categorize(text: str) -> list[str]:
    """The categories a fact belongs to, in the order above; empty when nothing matches."""
    lowered = f" {re.sub(r'[^a-z0-9 ]+', ' ', text.casefold().replace('’', chr(39)))} "
    lowered = lowered.replace(" can t ", " can't ")
    return [name for name, pattern in _PATTERNS.items() if pattern.search(lowered)]
