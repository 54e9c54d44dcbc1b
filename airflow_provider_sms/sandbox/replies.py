"""Simulated replies: whether, when and what a recipient answers, as a pure function of its number.

Like delivery outcomes (``delivery.py``), nothing runs per message: when a delivered SMS is stored,
the reply its recipient will send (if any) is stored with it, dated when it arrives; the gateways
list the replies whose time the sandbox clock has reached.

The rule (documented in docs/sandbox.md):

- SHA-256 of the number gives it fixed draws in [0, 1). It replies when its first draw is below the
  reply rate (default 8%), so a number that replies at 5% also replies at 10%.
- Each number replies once per gateway account: to the first SMS delivered to it there (not to
  voice messages, nor to messages that are undelivered or failed).
- ``STOP_SHARE`` (40%) of the repliers answer an opt-out keyword in one of seven languages, in one
  of a few spellings (case, accents, punctuation); the others answer free text in the same language.
- The reply arrives between a tenth of ``reply_seconds`` and all of it after delivery.

The keywords here are the sandbox's own (it shares no code with the provider): ``keyword`` decides
what the sandbox's Smstools opt-out list holds, by a deliberately plain rule (the whole reply is
one keyword).
"""

from __future__ import annotations

import hashlib
import string
import struct
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

STOP = "stop"
START = "start"
TEXT = "text"
STOP_SHARE = 0.4
MIN_DELAY = 0.1  # the earliest reply, as a share of reply_seconds after delivery
MAX_SECONDS = 10 * 365.25 * 86_400  # as the clock's largest step
LANGUAGES = ("en", "de", "fr", "es", "nl", "it", "pt")

# What a replier who opts out writes, per language: the keyword alone, in the spellings people use.
STOP_FORMS: dict[str, tuple[str, ...]] = {
    "en": ("STOP", "Stop", "stop.", "STOP!", " stop ", "UNSUBSCRIBE", "Cancel", "END", "quit"),
    "de": ("STOPP", "Stopp", "stopp!", "Stop"),
    "fr": ("ARRÊT", "Arrêt", "arret", "ARRET.", "STOP"),
    "es": ("BAJA", "Baja", "baja.", "¡Baja!"),
    "nl": ("AFMELDEN", "Afmelden", "afmelden!", "STOP"),
    "it": ("CANCELLA", "Cancella", "stop", "STOP."),
    "pt": ("PARAR", "Parar", "parar!", "STOP"),
}
# What the other repliers write: no opt-out keyword anywhere in it.
TEXT_FORMS: dict[str, tuple[str, ...]] = {
    "en": ("Thanks!", "Who is this?", "ok", "What time do you open tomorrow?"),
    "de": ("Danke!", "Wer ist da?", "Super, bis morgen"),
    "fr": ("Merci !", "C'est qui ?", "D'accord"),
    "es": ("¡Gracias!", "¿Quién es?", "Vale"),
    "nl": ("Bedankt!", "Wie is dit?", "Prima"),
    "it": ("Grazie!", "Chi è?", "Va bene"),
    "pt": ("Obrigado!", "Quem é?", "Combinado"),
}
STOP_KEYWORDS = frozenset(
    {"STOP", "STOPP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "ARRET", "BAJA", "AFMELDEN"}
    | {"CANCELLA", "PARAR"}
)
START_KEYWORDS = frozenset({"START", "UNSTOP"})
_TRIM = string.whitespace + string.punctuation


@dataclass(frozen=True)
class SimulatedReply:
    """What a number answers: ``kind`` ``stop`` or ``text``, its ``language`` and ``text``, and
    ``delay``, the share of ``reply_seconds`` after delivery at which it arrives."""

    kind: str
    language: str
    text: str
    delay: float


@lru_cache(maxsize=1 << 16)
def _draws(number: str) -> tuple[float, ...]:
    """Five independent draws in [0, 1) fixed by ``number``."""
    h1, l1, h2, l2, h3, l3, h4, l4, h5, l5 = _SIX_BYTE_NUMBERS.unpack_from(
        hashlib.sha256(f"sandbox reply {number}".encode()).digest()
    )
    return ((h1 << 32 | l1) / 2**48, (h2 << 32 | l2) / 2**48, (h3 << 32 | l3) / 2**48,
            (h4 << 32 | l4) / 2**48, (h5 << 32 | l5) / 2**48)  # fmt: skip


# The first 30 bytes of a digest as five big-endian 48-bit numbers, each in two parts (16 + 32 bits).
_SIX_BYTE_NUMBERS = struct.Struct(">" + "HI" * 5)


def simulated_reply(number: str, rate: float) -> SimulatedReply | None:
    """The reply of ``number`` (E.164) at reply rate ``rate``, or None when it does not reply."""
    replies, kind, language, form, delay = _draws(number)
    if replies >= rate:
        return None
    language_code = LANGUAGES[int(language * len(LANGUAGES))]
    is_stop = kind < STOP_SHARE
    forms = (STOP_FORMS if is_stop else TEXT_FORMS)[language_code]
    return SimulatedReply(
        kind=STOP if is_stop else TEXT,
        language=language_code,
        text=forms[int(form * len(forms))],
        delay=MIN_DELAY + (1 - MIN_DELAY) * delay,
    )


def keyword(text: str) -> str | None:
    """``stop`` or ``start`` when the whole of ``text`` is one such keyword (any case, accents,
    surrounding spaces and punctuation), else None."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    word = folded.strip(_TRIM).upper()
    if word in STOP_KEYWORDS:
        return STOP
    if word in START_KEYWORDS:
        return START
    return None


def check_simulation(rate: object, seconds: object) -> None:
    """``ValueError`` unless ``rate`` is a share from 0 to 1 and ``seconds`` a number from 0 to 10 years."""
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
        raise ValueError(f"the reply rate must be a share from 0 to 1, got {rate!r}")
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 <= seconds <= MAX_SECONDS:
        raise ValueError(
            f"the reply seconds must be a number from 0 to {MAX_SECONDS:.0f} (10 years), got {seconds!r}"
        )
