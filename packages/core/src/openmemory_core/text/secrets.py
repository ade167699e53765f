"""Finding secrets and personal data in text a person is about to store: private keys, cloud and API
tokens, stated passwords, card numbers, IBANs (secrets), and e-mail addresses and phone numbers (PII).

Every write's text passes here before it is published (`openmemory_core.guard`), so inputs are
hostile and as long as a memory may be. Each pattern is linear: it starts with a literal prefix or
with a look-behind that lets a match begin only where a run of token characters begins, and its
repeats are bounded, possessive, or over a class the next part cannot match, so nothing backtracks
more than a constant per position. Checks that a regex cannot do (Luhn, mod-97, context words) run
in Python on each candidate. Measured in `bench/secrets.py`.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

SECRET = "secrets"
EMAIL = "email"
PHONE = "phone"
CATEGORIES = (SECRET, EMAIL, PHONE)

#: Every kind a finding can have, as it appears in `[redacted: <kind>]`.
KINDS = (
    "private key", "aws key", "aws secret", "github token", "openai key", "anthropic key",
    "slack token", "stripe key", "google api key", "jwt", "api key", "password", "card number",
    "iban", "email", "phone",
)  # fmt: skip


@dataclass(frozen=True)
class Finding:
    """One thing found: its kind, its category (`secrets`, `email`, `phone`) and where it is."""

    kind: str
    start: int
    end: int

    @property
    def category(self) -> str:
        return self.kind if self.kind in (EMAIL, PHONE) else SECRET


_T = "A-Za-z0-9_-"  # token characters
_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_WORD_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
_LETTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_DIGITS = frozenset("0123456789")


def _begins(text: str, start: int, inside: frozenset[str]) -> bool:
    """A match begins a run: the character before it is not one of `inside`. (Checked here rather
    than by a look-behind, which would cost Python's regex engine its fast scan for the first
    character.)"""
    return start == 0 or text[start - 1] not in inside


# ---- tokens with a fixed prefix -------------------------------------------------------------------

_PREFIXED: list[tuple[str, re.Pattern[str], Callable[[str], bool] | None]] = []


def _mixed(token: str) -> bool:
    """Random-looking: letters and digits, upper and lower case (rules out words and hex hashes)."""
    return (
        any(ch.isdigit() for ch in token)
        and any(ch.isupper() for ch in token)
        and any(ch.islower() for ch in token)
    )


def _has_digit(token: str) -> bool:
    return any(ch.isdigit() for ch in token)


for _kind, _pattern, _check in (
    ("aws key", r"(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Za-z0-9])", None),
    ("github token", r"(?:gh[pousr]_[A-Za-z0-9]{36,}+|github_pat_[A-Za-z0-9_]{22,}+)", None),
    ("anthropic key", rf"sk-ant-[{_T}]{{20,}}+", None),
    ("openai key", rf"sk-(?!ant-)(?:proj-|svcacct-|admin-)?[{_T}]{{32,}}+", _mixed),
    ("slack token", r"(?:xox[abposrec]-|xapp-)[A-Za-z0-9-]{10,}+", _has_digit),
    ("stripe key", r"(?:sk|rk)_live_[A-Za-z0-9]{16,}+", None),
    ("google api key", rf"AIza[{_T}]{{35}}(?![{_T}])", None),
    ("jwt", rf"eyJ[{_T}]{{5,}}+\.eyJ[{_T}]{{5,}}+\.[{_T}]*+", None),
):
    _PREFIXED.append((_kind, re.compile(_pattern), _check))

_PEM_BEGIN = re.compile(r"-----BEGIN (?:[A-Z0-9]{1,12} ){0,2}PRIVATE KEY(?: BLOCK)?-----")
_PEM_END = "-----END"

# ---- secrets known by their context -----------------------------------------------------------------

_B64_40 = re.compile(r"(?<![A-Za-z0-9/+])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")  # only in windows
_SECRET_WORD = re.compile(r"secret", re.I)

_API_KEY_WORD = re.compile(
    r"(?:api[_ -]?(?:key|token|secret)|access[_ -]?(?:key|token)|auth[_ -]?token|"
    r"secret[_ -]?key|client[_ -]?secret|bearer|token|secret)(?![A-Za-z])",
    re.I,
)
_OPAQUE = re.compile(r"(?<![A-Za-z0-9_./+=-])[A-Za-z0-9_./+=-]{20,200}+")
_API_KEY_WINDOW = 80

_PASSWORD = re.compile(
    r"(pass(?:word|wd|phrase|code)|pwd)(?![A-Za-z])"
    # what it is for: "password for the NAS", "password to my bank account"
    r"(?:[ \t]+(?:for|to|of|on)[ \t]+(?:(?:the|my|our|your)[ \t]+)?"
    r"[\w.@'-]{1,40}+(?:[ \t]+[\w.@'-]{1,40}+)?)?"
    r"(?:[ \t]*[:=][ \t]*|[ \t]+(?:is|was)(?:[ \t]+(?:set[ \t]+to|now|still))?[ \t]*:?[ \t]*|[ \t]*->[ \t]*)"
    r"(\"[^\"\n]{1,128}+\"|'[^'\n]{1,128}+'|\S{1,128}+)",
    re.I,
)
_PASSPHRASE_REST = re.compile(r"(?:[ \t]+[^\s.,;:!?]{1,40}+){0,7}")
#: Words that follow "password is" in talk about passwords, not in a password.
_NOT_A_PASSWORD = frozenset(
    """a an the too so very not no still now being set reset required incorrect wrong correct right
    expired changed saved stored in on at see same different strong weak short long secure insecure
    easy hard simple my your his her their our its it this that what which where here there below
    above attached hidden encrypted hashed case sensitive managed protected optional empty blank
    missing forgotten unknown needed invalid valid ok okay fine great good bad also just only always
    never usually in the vault""".split()
)

# ---- numbers with a checksum ---------------------------------------------------------------------

_CARD = re.compile(r"\d(?:[ -]?\d){12,18}+(?![\d])")
_IBAN = re.compile(r"[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}+")
_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18,
    "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24,
    "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24,
    "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip

# ---- personal data ----------------------------------------------------------------------------------

_EMAIL_DOMAIN = re.compile(
    r"@[A-Za-z0-9][A-Za-z0-9-]{0,62}(?:\.[A-Za-z0-9-]{1,63}){0,8}\.[A-Za-z]{2,24}(?![A-Za-z0-9-])"
)
_EMAIL_LOCAL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._%+-")
_PHONE_INTL = re.compile(r"\+\d{1,3}(?>[ .-]?\(?\d{1,4}+\)?){2,6}+(?![\d])")
_PHONE_NANP = re.compile(r"(?:\(\d{3}\) ?|\d{3}[-. ])\d{3}[-. ]\d{4}(?![\d.-])")
_PHONE_WORD = re.compile(
    r"(?:phone|tel|mobile|cell|whatsapp|call me at|text me at|reach me at)(?![A-Za-z])", re.I
)
_PHONE_LOCAL = re.compile(r"(?<![\d+])\+?\d[\d ().-]{5,18}+")
_DATE_LIKE = re.compile(r"\d{4}-\d{1,2}-\d{1,2}|\d{1,2}[./]\d{1,2}[./]\d{2,4}")


def find(text: str) -> list[Finding]:
    """Every secret and piece of personal data in `text`, in order, none overlapping."""
    found: list[Finding] = []
    found.extend(_pem(text))
    for kind, pattern, check in _PREFIXED:
        found.extend(
            Finding(kind, m.start(), m.end())
            for m in pattern.finditer(text)
            if _begins(text, m.start(), _TOKEN_CHARS) and (check is None or check(m.group()))
        )
    found.extend(_aws_secrets(text, found))
    found.extend(_passwords(text))
    found.extend(_numbers(text))
    found.extend(_emails(text))
    found.extend(_phones(text))
    found = _without_overlaps(found)
    found.extend(_api_keys(text, found))  # last: only where nothing more specific was found
    return _without_overlaps(found)


def redact(text: str, findings: list[Finding]) -> str:
    """`text` with each finding replaced by `[redacted: <kind>]`."""
    parts: list[str] = []
    at = 0
    for f in sorted(findings, key=lambda f: f.start):
        parts.append(text[at : f.start])
        parts.append(f"[redacted: {f.kind}]")
        at = f.end
    parts.append(text[at:])
    return "".join(parts)


def _without_overlaps(found: list[Finding]) -> list[Finding]:
    """Secrets first (a token in a URL must not pass as the e-mail address around it, which the
    policy may allow), then personal data where no secret is; the earlier and longer one wins."""
    ordered = sorted(found, key=lambda f: (f.start, -(f.end - f.start)))
    secrets: list[Finding] = []
    for f in ordered:
        if f.category == SECRET and (not secrets or f.start >= secrets[-1].end):
            secrets.append(f)
    starts = [f.start for f in secrets]
    kept = list(secrets)
    last_end = 0
    for f in ordered:
        if f.category == SECRET or f.start < last_end:
            continue
        i = bisect.bisect_left(starts, f.end)  # the secrets that start before this one ends
        if i and secrets[i - 1].end > f.start:
            continue
        kept.append(f)
        last_end = f.end
    return sorted(kept, key=lambda f: f.start)


def _pem(text: str) -> Iterator[Finding]:
    """A private key block, to its END line, or to the end of the text when it was cut off."""
    at = 0
    while (m := _PEM_BEGIN.search(text, at)) is not None:
        end = text.find(_PEM_END, m.end())
        if end < 0:
            end = len(text)
        else:
            close = text.find("-----", end + len(_PEM_END), end + 80)
            end = close + 5 if close >= 0 else end + len(_PEM_END)
        yield Finding("private key", m.start(), end)
        at = end


def _aws_secrets(text: str, found: list[Finding]) -> Iterator[Finding]:
    """40 characters of base64 within a few words after "secret", or near an AWS access key id."""
    windows = [(f.start - 300, f.end + 300) for f in found if f.kind == "aws key"]
    windows += [(m.end(), m.end() + 100) for m in _SECRET_WORD.finditer(text)]
    seen: set[int] = set()
    for lo, hi in windows:
        for m in _B64_40.finditer(text, max(0, lo), min(len(text), hi)):
            if m.start() not in seen and _mixed(m.group()):  # not a git hash, not a word
                seen.add(m.start())
                yield Finding("aws secret", m.start(), m.end())


def _api_keys(text: str, found: list[Finding]) -> Iterator[Finding]:
    """An opaque token right after words that say it is a key, token or secret."""
    taken = [(f.start, f.end) for f in found]
    for word in _API_KEY_WORD.finditer(text):
        if not _begins(text, word.start(), _LETTERS):
            continue
        m = _OPAQUE.search(text, word.end(), word.end() + _API_KEY_WINDOW)
        if m is None or "://" in text[m.start() : m.end() + 3]:
            continue
        token = m.group()
        letters, digits = sum(ch.isalpha() for ch in token), sum(ch.isdigit() for ch in token)
        if letters < 4 or digits < 2 or len(set(token)) < 10:
            continue
        if any(s < m.end() and m.start() < e for s, e in taken):
            continue
        taken.append((m.start(), m.end()))
        yield Finding("api key", m.start(), m.end())


def _emails(text: str) -> Iterator[Finding]:
    """From each `@domain.tld`, back over up to 64 characters of a local part."""
    for m in _EMAIL_DOMAIN.finditer(text):
        start = m.start()
        while start > 0 and m.start() - start < 64 and text[start - 1] in _EMAIL_LOCAL:
            start -= 1
        if start < m.start() and _begins(text, start, _EMAIL_LOCAL):
            yield Finding(EMAIL, start, m.end())


def _passwords(text: str) -> Iterator[Finding]:
    for m in _PASSWORD.finditer(text):
        if not _begins(text, m.start(), _LETTERS):
            continue
        value = m.group(2)
        start, end = m.start(2), m.end(2)
        if value[0] not in "\"'":
            stripped = value.rstrip(".,;:)")
            end -= len(value) - len(stripped)
            value = stripped
            if not value or value.casefold() in _NOT_A_PASSWORD:
                continue
            if m.group(1).lower() == "passphrase":
                rest = _PASSPHRASE_REST.match(text, end)
                end = rest.end() if rest else end
        yield Finding("password", start, end)


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = ord(ch) - 48
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def _card_network(digits: str) -> bool:
    """The issuer's prefix fits the length: Visa, Mastercard, Amex, Diners, JCB, Discover/UnionPay."""
    n, first = len(digits), digits[0]
    if first == "4":
        return n in (13, 16, 19)
    if first == "5":
        return n == 16 and digits[1] in "12345"
    if first == "2":
        return n == 16 and "2221" <= digits[:4] <= "2720"
    if first == "3":
        return (
            (n == 15 and digits[1] in "47")
            or (n == 14 and digits[1] in "068")
            or (n in (16, 19) and digits[1] == "5")
        )
    return first == "6" and 16 <= n <= 19


def _numbers(text: str) -> Iterator[Finding]:
    for m in _CARD.finditer(text):
        raw = m.group()
        if not _begins(text, m.start(), _DIGITS | {".", ",", "/", "-"}) or ("-" in raw and " " in raw):
            continue
        digits = raw.replace(" ", "").replace("-", "")
        if 13 <= len(digits) <= 19 and _card_network(digits) and _luhn(digits):
            yield Finding("card number", m.start(), m.end())
    for m in _IBAN.finditer(text):
        length = _IBAN_LENGTHS.get(m.group()[:2])
        if length is None or not _begins(text, m.start(), _WORD_CHARS):
            continue
        chars, end = [], m.start()
        for i in range(m.start(), m.end()):
            if text[i] != " ":
                chars.append(text[i])
                if len(chars) == length:
                    end = i + 1
                    break
        if len(chars) < length or (
            end < len(text) and text[end].isalnum() and text[end - 1] != " " and text[end] != " "
        ):
            continue
        code = "".join(chars)
        rearranged = code[4:] + code[:4]
        if int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1:
            yield Finding("iban", m.start(), end)


def _phones(text: str) -> Iterator[Finding]:
    for m in _PHONE_INTL.finditer(text):
        if _begins(text, m.start(), _WORD_CHARS | {"+"}) and 8 <= sum(ch.isdigit() for ch in m.group()) <= 15:
            yield Finding(PHONE, m.start(), m.end())
    for m in _PHONE_NANP.finditer(text):
        if _begins(text, m.start(), _WORD_CHARS | {".", "+", "-"}):
            yield Finding(PHONE, m.start(), m.end())
    for word in _PHONE_WORD.finditer(text):
        if not _begins(text, word.start(), _LETTERS):
            continue
        local = _PHONE_LOCAL.search(text, word.end(), word.end() + 30)
        if local is None:
            continue
        number = local.group().rstrip(" .-(")
        if 7 <= sum(ch.isdigit() for ch in number) <= 15 and not _DATE_LIKE.search(number):
            yield Finding(PHONE, local.start(), local.start() + len(number))
