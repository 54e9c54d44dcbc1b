"""Stop and start keywords in SMS replies: is this reply an opt-out, a re-subscription, or neither?

``classify_reply(text)`` reads one reply and returns a ``ReplyVerdict``: its ``intent`` (``STOP``,
``START``, ``NONE`` for free text, ``AMBIGUOUS`` for a person to read), the keyword it rests on,
that keyword's language (``None`` when several languages share it, as STOP) and a short reason.

The rules (docs/opt-outs.md, "Keywords", says the same with examples):

1. **Words.** The text is normalised with Unicode NFKD, every mark (accents, combining and
   enclosing marks) is dropped and the rest casefolded, so ``ARRÊT``, ``arret`` and ``Arrêt``
   are one word, as are a full-width STOP and ``stop``. Letters and digits make words; everything
   else (whitespace, punctuation, emoji, ``_``, apostrophes, hyphens) only separates them. A word
   is a keyword when it equals one: ``stopwatch``, ``endless`` and ``bajamos`` are not ``stop``,
   ``end`` and ``baja``.
2. **Multi-word keywords** are consecutive words: ``opt out`` (also written ``opt-out``, the FCC's
   form; ``optout`` is a keyword of its own) and ``stop all`` (Telnyx). The longest keyword at a
   position wins. ``no more`` is not a keyword: it is on no carrier's or regulator's list, and
   ``no`` alone answers questions; such a reply is free text (``NONE``) like any other.
3. **Only keywords** (``Stop!!``, `` stop. ``, ``STOP STOP``, ``stop all``): that intent. Stop and
   start keywords together (``stop start``, ``YES STOP``): ``AMBIGUOUS``.
4. **Keyword first** (``Stop sending me this``, ``STOP please``, ``baja por favor``): that intent,
   the rule carriers apply to a message that begins with a keyword (AWS End User Messaging). If a
   keyword of the other intent follows (``stop, no, start``), ``AMBIGUOUS``.
5. **A keyword after other words** (``please stop``, ``don't stop``, ``I will not unsubscribe``):
   ``AMBIGUOUS``; negation and context are for a person, not guessed.
6. **No keyword**, an empty reply or ``None``: ``NONE``.
7. **Whole-reply-only keywords.** ``YES`` (English start) and ``UIT`` (Dutch stop) count only
   when the reply is keywords alone (rule 3): as a first word they are ordinary words ("Yes, see
   you at 5", "Uit de winkel"), and the lists that name them mean the whole message.

The lists are ``KEYWORDS`` below; docs/opt-outs.md says where each word comes from: the FCC's
TCPA revocation rule (FCC 24-24: stop, quit, end, revoke, opt out, cancel, unsubscribe), the CTIA
Short Code Monitoring Handbook, the defaults of Twilio, Telnyx, Vonage, AWS End User Messaging and
Sinch, the Dutch SMS code of conduct (STOP, UIT), national SMS guides, and, marked there, words of
our own choice (ABMELDEN, AFMELDEN, DÉSINSCRIPTION...).

Start lists are short on purpose: a wrong START puts back a number that asked to be left alone,
a wrong STOP only loses a recipient.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from types import MappingProxyType

__all__ = ["KEYWORDS", "WHOLE_REPLY_ONLY", "ReplyIntent", "ReplyVerdict", "classify_reply"]


class ReplyIntent(str, Enum):
    """What a reply asks for."""

    STOP = "stop"
    START = "start"
    NONE = "none"  # no keyword: free text
    AMBIGUOUS = "ambiguous"  # kept for a person, not guessed


@dataclass(frozen=True)
class ReplyVerdict:
    """The verdict on one reply.

    :param intent: what the reply asks for.
    :param keyword: the keyword the verdict rests on, normalised (``"arret"``, ``"opt out"``);
        ``None`` for ``NONE``.
    :param language: ISO 639-1 code of the one language whose list holds ``keyword``; ``None``
        when several do (``stop``, ``start``, ``parar``, ``cancelar``) or there is no keyword.
    :param reason: why, in a few words, for the person who reads an ``AMBIGUOUS`` reply.
    """

    intent: ReplyIntent
    keyword: str | None
    language: str | None
    reason: str


_STOP, _START = ReplyIntent.STOP, ReplyIntent.START

# language -> intent -> keywords as people write them; docs/opt-outs.md says where each comes from.
KEYWORDS: Mapping[str, Mapping[ReplyIntent, tuple[str, ...]]] = MappingProxyType(
    {
        "en": {
            _STOP: (
                "STOP",
                "STOPALL",
                "STOP ALL",
                "UNSUBSCRIBE",
                "CANCEL",
                "END",
                "QUIT",
                "REVOKE",
                "OPTOUT",
                "OPT OUT",
                "REMOVE",
            ),
            _START: ("START", "UNSTOP", "SUBSCRIBE", "YES"),
        },
        "de": {
            _STOP: ("STOP", "STOPP", "ENDE", "ABMELDEN", "ABBESTELLEN"),
            _START: ("START", "ANMELDEN"),
        },
        "fr": {
            _STOP: (
                "STOP",
                "ARRÊT",
                "ARRÊTE",
                "ARRETT",
                "ARRÊTER",
                "ARRÊTEZ",
                "DÉSINSCRIPTION",
                "DÉSINSCRIRE",
                "DÉSABONNER",
            ),
            _START: ("START",),
        },
        "es": {
            _STOP: ("STOP", "BAJA", "ALTO", "PARAR", "CANCELAR", "DETENER", "SALIR"),
            _START: ("START", "VOLVER", "RECIBIR"),
        },
        "nl": {
            _STOP: ("STOP", "STOPPEN", "AFMELDEN", "UITSCHRIJVEN", "UIT"),
            _START: ("START", "AANMELDEN"),
        },
        "it": {
            _STOP: ("STOP", "BASTA", "CANCELLA", "CANCELLAMI", "DISISCRIVI", "DISISCRIVIMI", "DISISCRIZIONE"),
            _START: ("START",),
        },
        "pt": {
            _STOP: ("STOP", "PARAR", "SAIR", "CANCELAR"),
            _START: ("START", "VOLTAR", "RECEBER"),
        },
    }
)
# Keywords that count only when the reply is keywords alone (rule 7): ordinary words when first.
WHOLE_REPLY_ONLY: frozenset[str] = frozenset({"YES", "UIT"})


class _Fold(dict):
    """``str.translate`` table: marks dropped, anything but a letter or digit made a space.

    Filled on first sight of each character, so ``translate`` runs in C for every character
    already seen (nearly all of them after the first few replies).
    """

    def __missing__(self, codepoint: int) -> str | None:
        char = chr(codepoint)
        if unicodedata.category(char)[0] == "M":
            value = None
        elif char.isalnum() and char != "_":
            value = char
        else:
            value = " "
        self[codepoint] = value
        return value


_FOLD = _Fold()


def _words(text: str) -> list[str]:
    # Marks go before casefolding, which would turn one of them into a letter (U+0345 -> iota);
    # casefolding comes after NFKD, whose compatibility forms can be capitals (Ⓢ -> S).
    return unicodedata.normalize("NFKD", text).translate(_FOLD).casefold().split()


@dataclass(frozen=True, eq=False)  # one instance per keyword: hashed by identity, cheap in the cache
class _Keyword:
    words: tuple[str, ...]
    text: str  # normalised, words joined by one space
    intent: ReplyIntent
    language: str | None
    whole_reply_only: bool


def _index() -> dict[str, tuple[_Keyword, ...]]:
    """First word -> the keywords starting with it, longest first."""
    found: dict[tuple[str, ...], tuple[ReplyIntent, set[str], bool]] = {}
    for language, by_intent in KEYWORDS.items():
        for intent, keywords in by_intent.items():
            for keyword in keywords:
                words = tuple(_words(keyword))
                intent_seen, languages, alone = found.setdefault(words, (intent, set(), False))
                if intent_seen is not intent:
                    raise ValueError(
                        f"{keyword!r} is both a {intent_seen.value} and a {intent.value} keyword"
                    )
                languages.add(language)
                found[words] = (intent, languages, alone or keyword in WHOLE_REPLY_ONLY)
    index: dict[str, list[_Keyword]] = {}
    for words, (intent, languages, alone) in found.items():
        language = next(iter(languages)) if len(languages) == 1 else None
        index.setdefault(words[0], []).append(_Keyword(words, " ".join(words), intent, language, alone))
    return {first: tuple(sorted(kws, key=lambda k: -len(k.words))) for first, kws in index.items()}


_INDEX = _index()
_FIRST_WORDS = frozenset(_INDEX)


def _keyword_at(words: list[str], position: int) -> _Keyword | None:
    for keyword in _INDEX.get(words[position], ()):
        if tuple(words[position : position + len(keyword.words)]) == keyword.words:
            return keyword
    return None


@lru_cache(maxsize=4096)  # verdicts are few and frozen: share them rather than build millions
def _verdict(intent: ReplyIntent, keyword: _Keyword | None, reason: str) -> ReplyVerdict:
    if keyword is None:
        return ReplyVerdict(intent, None, None, reason)
    return ReplyVerdict(intent, keyword.text, keyword.language, reason)


_EMPTY = _verdict(ReplyIntent.NONE, None, "empty reply")
_NO_KEYWORD = _verdict(ReplyIntent.NONE, None, "no keyword")


def classify_reply(text: str | None) -> ReplyVerdict:
    """The verdict on one reply, by the rules in this module's docstring."""
    words = _words(text) if text else []
    if not words:
        return _EMPTY
    if _FIRST_WORDS.isdisjoint(words):  # most free text: one set operation, no loop
        return _NO_KEYWORD
    found: list[tuple[int, _Keyword]] = []
    position = 0
    only_keywords = True
    while position < len(words):
        keyword = _keyword_at(words, position)
        if keyword is None:
            only_keywords = False
            position += 1
        else:
            found.append((position, keyword))
            position += len(keyword.words)
    if found and only_keywords:
        first = found[0][1]
        other = next((k for _, k in found if k.intent is not first.intent), None)
        if other is not None:
            return _verdict(
                ReplyIntent.AMBIGUOUS, first, f"both {first.intent.value} and {other.intent.value} keywords"
            )
        return _verdict(first.intent, first, f"only the keyword {first.text!r}")
    found = [(p, k) for p, k in found if not k.whole_reply_only]
    if not found:
        return _NO_KEYWORD
    position, first = found[0]
    if position > 0:
        return _verdict(ReplyIntent.AMBIGUOUS, first, f"the keyword {first.text!r} follows other words")
    other = next((k for _, k in found if k.intent is not first.intent), None)
    if other is not None:
        return _verdict(
            ReplyIntent.AMBIGUOUS,
            first,
            f"starts with the {first.intent.value} keyword {first.text!r}, "
            f"then the {other.intent.value} keyword {other.text!r}",
        )
    return _verdict(first.intent, first, f"starts with the keyword {first.text!r}")
