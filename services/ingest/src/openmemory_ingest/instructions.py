"""Telling a memory from an instruction to an assistant: text that, once a search serves it into a
model's context, would make the model override its instructions, act (call a tool, send data to an
address) or answer as someone else dictated. Ingest holds such a memory as `pending` until the user
approves it (README, "Trust").

The line drawn: a person's facts, habits and preferences stay memories, including preferences about
how the assistant answers ("always answer me in Spanish", "when I ask for recipes, use metric
units"). What is held addresses the assistant to make it do something beyond answering that person
as they asked: ignore or replace its instructions, call a tool, send something to a URL or an
address, answer a third party's question with a fixed reply, or carry chat-template / tool-call markup.

Inputs are hostile and up to `MAX_TEXT_CHARS` long. The text is lower-cased and its whitespace made
single spaces first; then every pattern is a literal or an alternation of literals with at most one
bounded gap over one character class, so each costs a constant per position. The text is cut into
clauses (sentences and lines) once, and each clause is read with anchored patterns.
"""

from __future__ import annotations

import re

OVERRIDE = "it tells the assistant to ignore or replace its instructions"
SEND = "it tells the assistant to send something to an address or URL"
STANDING = "it gives the assistant a standing order that is not about the user"
TOOL = "it tells the assistant to call a tool or run a command"
ANSWER = "it dictates what the assistant answers when others ask"
ADDRESSED = "it addresses an AI assistant reading the text"
MARKUP = "it holds chat-template or tool-call markup"

#: The part of a text that is read; a memory is at most this long anyway (`MAX_TEXT_CHARS`).
MAX_CHARS = 20_000

_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"', "`": "'"})

# Words that may come before a verb aimed at the assistant: politeness, "always", a modal said to it.
_LEAD = (
    r"(?:(?:please|also|and|then|now|so|ok|okay|hey|assistant|ai|remember|from now on|always|"
    r"make sure to|make sure you|be sure to|remember to|do not forget to|don't forget to|"
    r"(?:you|the assistant|the ai|the model|the agent|assistants) "
    r"(?:must|should|will|shall|need to|have to|are to|are required to|are going to)),? ){0,5}"
)

_OVERRIDE = re.compile(
    r"\b(?:ignore|disregard|forget|override|bypass|drop) "
    r"(?:(?:all|any|the|your|of|these|those|everything|every|previous|prior|above|earlier|preceding|"
    r"former|original|initial|system|safety|existing|other|developer|user's|users'|content|default) ){0,4}"
    r"(?:instructions?|prompts?|rules|guidelines|directives|directions|guardrails|restrictions|"
    r"constraints|policies|programming|you were told|you have been told|you've been told)\b"
)
_FIRST_PERSON = frozenset({"i", "we", "he", "she", "they", "usually", "often", "sometimes", "never", "to"})
_ROLE = re.compile(
    r"\b(?:you are now|you're now) (?:a |an |in |the |dan\b|unrestricted|jailbroken|free)"
    r"|\b(?:developer|god|dan|jailbreak) mode\b"
    r"|\bnew (?:system )?instructions ?:"
    r"|\b(?:reveal|print|show|output|repeat|leak) (?:me )?(?:your|the) (?:full )?(?:system prompt|"
    r"hidden instructions|hidden prompt|initial instructions|instructions)\b"
    r"|\bdo not tell the user\b|\bdon't tell the user\b"
    r"|\bact as (?:the |an? )?(?:system|admin|administrator|root|developer)\b"
)
_MARKUP = re.compile(
    r"<\|im_start\|>|<\|system\|>|<\|assistant\|>|\[/?inst\]|<</?sys>>|<system>|\[system\]"
    r"|<tool_call>|<function_call>|\"tool_calls\"|\"function_call\""
    r"|\"name\": ?\"[a-z0-9_.-]{1,80}\", ?\"(?:arguments|parameters|input)\" ?:"
)
_ADDRESSED = re.compile(
    r"\b(?:note|message|instructions?|attention) (?:to|for) (?:the |any |all )?"
    r"(?:ai assistant|ai agent|ai model|ai|llm|assistant|chatbot|language model|agent|model)s? ?[:,-]"
    r"|\bif you are an? (?:ai|llm|assistant|chatbot|language model|agent|ai assistant|ai model)\b"
    r"|\b(?:ai|llm) (?:assistants?|agents?|models?) (?:reading|processing|summari[sz]ing) this\b"
)

# Clause-level patterns: `_LEAD` then a verb at the start of a clause is an imperative.
_SEND_VERB = re.compile(
    _LEAD + r"(?:send|forward|e-?mail|post|upload|share|transfer|leak|exfiltrate|transmit|copy|"
    r"submit|report|cc|bcc|include)\b"
)
_DESTINATION = re.compile(
    r"https?://|\bwww\.|\[redacted: email|\b[a-z0-9._%+-]{1,64}@[a-z0-9-]{1,63}\.[a-z]|\bwebhook\b"
)
_SENSITIVE = re.compile(
    r"\b(?:all|every|any) (?:of )?(?:the |your |their |this )?(?:user'?s'? )?(?:memories|data|messages|"
    r"conversations?|chats?|history|files|passwords|credentials|keys|secrets|tokens|contacts|e-?mails|codes)"
    r"|\b(?:the|this) (?:user'?s'? )?(?:conversation|chat history|passwords?|api keys?|credentials)\b"
)
_SEND_ANYWHERE = re.compile(r"\b(?:send|forward|e-?mail|post|upload|leak|exfiltrate|transmit)\b")
_TOOL_VERB = re.compile(_LEAD + r"(?:call|invoke|run|execute|trigger|use)\b ?")
_TOOL_OBJECT = re.compile(
    r"(?:the |this |that |a )?(?:'[^']{1,60}' |\"[^\"]{1,60}\" |[a-z0-9_.-]{1,60} |following )?"
    r"(?:tool|function|command|script|api|endpoint|action|code)s?\b"
    r"|'?[a-z][a-z0-9]{0,30}_[a-z0-9_]{1,60}\b"
)
# "From now on you must …": held unless it is about the user ("… answer me in Spanish").
_STANDING = re.compile(
    r"from now on,? (?:you|the assistant|the ai) (?:must|will|shall|should|have to|are to)\b"
)
_ABOUT_USER = re.compile(r"\b(?:i|me|my|mine|i'm|i've|myself)\b")
_CONDITION = re.compile(
    r"\b(?:when|whenever|if) (?:you are |you're |you get |anyone |someone |the user |a user |users |"
    r"people |they |somebody )?(?:asked|asks?)\b"
)
_ANSWER_VERB = re.compile(
    _LEAD + r"(?:reply|respond|answer|say|tell|recommend|claim|state|mention|insist|deny|suggest|"
    r"direct|praise)\b"
)
_CLAUSE_END = re.compile(r"[.!?](?: |$)|[;\n]|(?<!redacted): |<!--|-->|\"")


def _words(text: str) -> str:
    """Lower case, one kind of quote, single spaces (but line breaks kept: they end clauses)."""
    lines = text[:MAX_CHARS].translate(_QUOTES).lower().split("\n")
    return "\n".join(" ".join(line.split()) for line in lines)


def _clauses(text: str) -> list[str]:
    return [part.strip(" '-*>#()[]{},") for part in _CLAUSE_END.split(text)]


def _overrides(text: str) -> bool:
    for match in _OVERRIDE.finditer(text):
        before = text[max(0, match.start() - 12) : match.start()].split()
        if not before or before[-1] not in _FIRST_PERSON:  # "I ignore all the rules" is a habit
            return True
    return False


def _answer_dictated(clause: str) -> bool:
    """ "When asked about X, reply Y" / "always recommend Y when asked": a condition on someone else's
    question (not "when I ask", which is the user's own preference) and a verb of answering."""
    condition = _CONDITION.search(clause)
    if condition is None:
        return False
    if _ANSWER_VERB.match(clause):
        return True
    comma = clause.find(", ", condition.end())
    return comma >= 0 and _ANSWER_VERB.match(clause, comma + 2) is not None


def _clause_reason(clause: str) -> str | None:
    if (_SEND_VERB.match(clause) or (_SEND_ANYWHERE.search(clause) and _SENSITIVE.search(clause))) and (
        _DESTINATION.search(clause)
    ):
        return SEND
    tool = _TOOL_VERB.match(clause)
    if tool and _TOOL_OBJECT.match(clause, tool.end()):
        return TOOL
    if _answer_dictated(clause):
        return ANSWER
    if _STANDING.match(clause) and not _ABOUT_USER.search(clause):
        return STANDING
    return None


def instruction_reason(text: str) -> str | None:
    """Why `text` reads as an instruction to an assistant rather than a memory (one of the reasons
    above), or None for an ordinary memory. Reads at most `MAX_CHARS` characters, in linear time."""
    words = _words(text)
    if _MARKUP.search(words):
        return MARKUP
    if _overrides(words) or _ROLE.search(words):
        return OVERRIDE
    if _ADDRESSED.search(words):
        return ADDRESSED
    for clause in _clauses(words):
        if reason := _clause_reason(clause):
            return reason
    return None
