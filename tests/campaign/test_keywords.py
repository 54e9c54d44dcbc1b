"""Stop/start keyword detection in replies: example tables per language, and properties over
generated replies in the seven languages.

The generators use this file's own keyword lists (the documented ones, docs/opt-outs.md), not the
module's, so a keyword dropped from the implementation makes a property fail.
"""

from __future__ import annotations

import string
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_sms.campaign.keywords import KEYWORDS, ReplyIntent, ReplyVerdict, classify_reply

STOP, START, NONE, AMBIGUOUS = ReplyIntent.STOP, ReplyIntent.START, ReplyIntent.NONE, ReplyIntent.AMBIGUOUS

# The documented lists, as people write them.
STOP_KEYWORDS = {
    "en": [
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
    ],
    "de": ["STOP", "STOPP", "ENDE", "ABMELDEN", "ABBESTELLEN"],
    "fr": [
        "STOP",
        "ARRÊT",
        "ARRÊTE",
        "ARRETT",
        "ARRÊTER",
        "ARRÊTEZ",
        "DÉSINSCRIPTION",
        "DÉSINSCRIRE",
        "DÉSABONNER",
    ],
    "es": ["STOP", "BAJA", "ALTO", "PARAR", "CANCELAR", "DETENER", "SALIR"],
    "nl": ["STOP", "STOPPEN", "AFMELDEN", "UITSCHRIJVEN", "UIT"],
    "it": ["STOP", "BASTA", "CANCELLA", "CANCELLAMI", "DISISCRIVI", "DISISCRIVIMI", "DISISCRIZIONE"],
    "pt": ["STOP", "PARAR", "SAIR", "CANCELAR"],
}
START_KEYWORDS = {
    "en": ["START", "UNSTOP", "SUBSCRIBE", "YES"],
    "de": ["START", "ANMELDEN"],
    "fr": ["START"],
    "es": ["START", "VOLVER", "RECIBIR"],
    "nl": ["START", "AANMELDEN"],
    "it": ["START"],
    "pt": ["START", "VOLTAR", "RECEBER"],
}
# Keywords only when the reply is keywords alone; ordinary words as the first of a sentence.
WHOLE_REPLY_ONLY = {"YES", "UIT"}
LANGUAGES = ["en", "de", "fr", "es", "nl", "it", "pt"]


def plain(text: str) -> str:
    """Accents off, lower case, words joined by one space: how a verdict names its keyword."""
    decomposed = unicodedata.normalize("NFD", text)
    return " ".join("".join(c for c in decomposed if not unicodedata.combining(c)).lower().split())


ALL = [(lang, STOP, kw) for lang in LANGUAGES for kw in STOP_KEYWORDS[lang]] + [
    (lang, START, kw) for lang in LANGUAGES for kw in START_KEYWORDS[lang]
]
STRONG = [entry for entry in ALL if entry[2] not in WHOLE_REPLY_ONLY]
WEAK = [entry for entry in ALL if entry[2] in WHOLE_REPLY_ONLY]
# Every word that is, or is part of, a keyword: generated free text avoids them all.
KEYWORD_WORDS = {word for _, _, kw in ALL for word in plain(kw).split()}
LANGUAGES_OF: dict[str, set[str]] = {}
for _lang, _intent, _kw in ALL:
    LANGUAGES_OF.setdefault(plain(_kw), set()).add(_lang)


def language_of(keyword: str) -> str | None:
    languages = LANGUAGES_OF[plain(keyword)]
    return next(iter(languages)) if len(languages) == 1 else None


def verdict(text: str | None) -> tuple[ReplyIntent, str | None, str | None]:
    v = classify_reply(text)
    assert isinstance(v, ReplyVerdict) and v.reason
    return v.intent, v.keyword, v.language


def test_the_tests_know_every_keyword_the_module_has():
    """Else generated 'free text' could hold a keyword the tests do not know of."""
    module = {
        (lang, intent, kw)
        for lang, by_intent in KEYWORDS.items()
        for intent, kws in by_intent.items()
        for kw in kws
    }
    assert module == set(ALL)


# --- examples, per language ---------------------------------------------------------------------

EXAMPLES = {
    "en": [
        ("STOP", STOP, "stop", None),
        ("Stop!!", STOP, "stop", None),
        (" stop. ", STOP, "stop", None),
        ("stop stop STOP", STOP, "stop", None),
        ("Stop sending me this", STOP, "stop", None),
        ("STOP please", STOP, "stop", None),
        ("unsubscribe", STOP, "unsubscribe", "en"),
        ("Opt-out", STOP, "opt out", "en"),
        ("OPT OUT now", STOP, "opt out", "en"),
        ("optout", STOP, "optout", "en"),
        ("Stop all", STOP, "stop all", "en"),
        ("STOP ALL of them", STOP, "stop all", "en"),
        ("STOPALL", STOP, "stopall", "en"),
        ("Cancel.", STOP, "cancel", "en"),
        ("END", STOP, "end", "en"),
        ("Quit it", STOP, "quit", "en"),
        ("revoke", STOP, "revoke", "en"),
        ("Remove me from your list", STOP, "remove", "en"),
        ("stop and unsubscribe me", STOP, "stop", None),
        ("please stop", AMBIGUOUS, "stop", None),
        ("don't stop", AMBIGUOUS, "stop", None),
        ("I will not unsubscribe", AMBIGUOUS, "unsubscribe", "en"),
        ("I want to opt out", AMBIGUOUS, "opt out", "en"),
        ("See you at the end of the week", AMBIGUOUS, "end", "en"),
        ("START", START, "start", None),
        ("unstop", START, "unstop", "en"),
        ("Subscribe me again", START, "subscribe", "en"),
        ("Yes", START, "yes", "en"),
        ("YES!", START, "yes", "en"),
        ("Yes, see you at 5", NONE, None, None),
        ("Sure, yes", NONE, None, None),
        ("Yes but please stop", AMBIGUOUS, "stop", None),
        ("stop start", AMBIGUOUS, "stop", None),
        ("START STOP", AMBIGUOUS, "start", None),
        ("YES STOP", AMBIGUOUS, "yes", "en"),
        ("Stop. No wait, start", AMBIGUOUS, "stop", None),
        ("stopwatch", NONE, None, None),
        ("endless summer", NONE, None, None),
        ("Unsubscribed already?", NONE, None, None),
        ("no more", NONE, None, None),
        ("Thanks!", NONE, None, None),
    ],
    "de": [
        ("STOPP", STOP, "stopp", "de"),
        ("Stopp!", STOP, "stopp", "de"),
        ("abmelden bitte", STOP, "abmelden", "de"),
        ("ENDE", STOP, "ende", "de"),
        ("Abbestellen.", STOP, "abbestellen", "de"),
        ("Bitte abmelden", AMBIGUOUS, "abmelden", "de"),
        ("Ich möchte mich abmelden", AMBIGUOUS, "abmelden", "de"),
        ("Anmelden", START, "anmelden", "de"),
        ("Stoppuhr gefunden", NONE, None, None),
        ("Abmeldung erhalten?", NONE, None, None),
        ("Danke schön", NONE, None, None),
    ],
    "fr": [
        ("ARRÊT", STOP, "arret", "fr"),
        ("arret", STOP, "arret", "fr"),
        ("Arrête !", STOP, "arrete", "fr"),
        ("ARRETT", STOP, "arrett", "fr"),
        ("Arrêtez de m'envoyer des SMS", STOP, "arretez", "fr"),
        ("STOP au 36180", STOP, "stop", None),
        ("Désinscription", STOP, "desinscription", "fr"),
        ("desabonner svp", STOP, "desabonner", "fr"),
        ("Je veux me désinscrire", AMBIGUOUS, "desinscrire", "fr"),
        ("S'il vous plaît, stop", AMBIGUOUS, "stop", None),
        ("START", START, "start", None),
        ("Arrêtoir", NONE, None, None),
        ("Merci beaucoup", NONE, None, None),
    ],
    "es": [
        ("BAJA", STOP, "baja", "es"),
        ("baja por favor", STOP, "baja", "es"),
        ("¡Alto!", STOP, "alto", "es"),
        ("Parar", STOP, "parar", None),
        ("Cancelar ya", STOP, "cancelar", None),
        ("detener", STOP, "detener", "es"),
        ("Salir", STOP, "salir", "es"),
        ("Quiero darme de baja", AMBIGUOUS, "baja", "es"),
        ("Volver", START, "volver", "es"),
        ("recibir", START, "recibir", "es"),
        ("bajamos mañana", NONE, None, None),
        ("Gracias", NONE, None, None),
    ],
    "nl": [
        ("STOP", STOP, "stop", None),
        ("Afmelden", STOP, "afmelden", "nl"),
        ("uitschrijven graag", STOP, "uitschrijven", "nl"),
        ("stoppen", STOP, "stoppen", "nl"),
        ("UIT", STOP, "uit", "nl"),
        ("Uit!", STOP, "uit", "nl"),
        ("Uit de winkel gehaald", NONE, None, None),
        ("Ik wil me afmelden", AMBIGUOUS, "afmelden", "nl"),
        ("aanmelden", START, "aanmelden", "nl"),
        ("afmeldingen", NONE, None, None),
        ("Bedankt", NONE, None, None),
    ],
    "it": [
        ("Basta!", STOP, "basta", "it"),
        ("cancellami per favore", STOP, "cancellami", "it"),
        ("CANCELLA", STOP, "cancella", "it"),
        ("Disiscrivimi", STOP, "disiscrivimi", "it"),
        ("disiscrizione", STOP, "disiscrizione", "it"),
        ("Per favore basta", AMBIGUOUS, "basta", "it"),
        ("START", START, "start", None),
        ("Grazie mille", NONE, None, None),
        ("bastardi", NONE, None, None),
    ],
    "pt": [
        ("SAIR", STOP, "sair", "pt"),
        ("Parar!", STOP, "parar", None),
        ("cancelar", STOP, "cancelar", None),
        ("Quero sair da lista", AMBIGUOUS, "sair", "pt"),
        ("Voltar", START, "voltar", "pt"),
        ("receber de novo", START, "receber", "pt"),
        ("Obrigado", NONE, None, None),
        ("sairemos amanhã", NONE, None, None),
    ],
}


@pytest.mark.parametrize(
    ("text", "intent", "keyword", "language"),
    [example for lang in LANGUAGES for example in EXAMPLES[lang]],
    ids=[f"{lang}-{example[0]!r}" for lang in LANGUAGES for example in EXAMPLES[lang]],
)
def test_examples(text, intent, keyword, language):
    assert verdict(text) == (intent, keyword, language)


@pytest.mark.parametrize("text", [None, "", "   ", "\n\t", "🙏🙏", "...!!!", "👍🏽"])
def test_an_empty_reply_has_no_keyword(text):
    assert verdict(text) == (NONE, None, None)


@pytest.mark.parametrize(
    "text",
    # U+0345 is a mark that casefolding would turn into a letter (iota): dropped first.
    [
        "\uff33\uff34\uff2f\uff30",  # full-width
        "Ⓢⓣⓞⓟ",
        "🛑STOP🛑",
        "stop\u200b",
        "«stop»",
        "stop_",
        "s\u0301to\u0308p",
        "ST\u00d3P",
        "sto\u0345p",
    ],
)
def test_unicode_variants_of_stop(text):
    assert verdict(text) == (STOP, "stop", None)


def test_a_verdict_names_why():
    assert "follows other words" in classify_reply("please stop").reason
    assert classify_reply("stop start").reason == "both stop and start keywords"


# --- properties over generated replies ----------------------------------------------------------

SEPARATORS = " .,;:!?¡¿…-\u2013—'\"\u2019«»()[]/*#_\t\n🛑🙏😡👍"
punctuation = st.text(alphabet=SEPARATORS, max_size=4)
separator = st.text(alphabet=SEPARATORS, min_size=1, max_size=3)
COMBINING = [chr(c) for c in range(0x300, 0x370)]
FILLER = [
    "please", "sending", "me", "these", "messages", "thanks", "now", "today",
    "bitte", "danke", "nachrichten", "keine", "merci", "messages", "plus", "por", "favor", "gracias",
    "mensajes", "alsjeblieft", "bedankt", "berichten", "grazie", "messaggi", "obrigado", "mensagens",
]  # fmt: skip
assert not KEYWORD_WORDS & set(FILLER)
LETTERS = string.ascii_lowercase + "àéèöüñçãô"
free_word = st.one_of(
    st.sampled_from(FILLER),
    st.text(alphabet=LETTERS, min_size=1, max_size=9).filter(lambda w: plain(w) not in KEYWORD_WORDS),
)
single_word_keywords = sorted({plain(kw) for _, _, kw in ALL if " " not in kw})
# A word with a keyword inside it ("stopwatch", "endless", "bajamos") that is no keyword itself.
containing_word = st.builds(
    lambda before, kw, after: before + kw + after,
    st.text(alphabet=string.ascii_lowercase, max_size=4),
    st.sampled_from(single_word_keywords),
    st.text(alphabet=string.ascii_lowercase, max_size=4),
).filter(lambda w: w not in KEYWORD_WORDS)


@st.composite
def spelled(draw, keyword: str) -> str:
    """``keyword`` as someone might type it: any case, accents dropped or added, words split by
    any separator."""
    words = []
    for word in keyword.split():
        chars = []
        for char in word:
            if draw(st.booleans()):  # the accent off
                char = plain(char)
            char = char.upper() if draw(st.booleans()) else char.lower()
            if draw(st.integers(0, 4)) == 0:  # an accent on
                char += draw(st.sampled_from(COMBINING))
            chars.append(char)
        form = draw(st.sampled_from(["NFC", "NFD"]))
        words.append(unicodedata.normalize(form, "".join(chars)))
    return "".join(w + draw(separator) for w in words[:-1]) + words[-1]


def sentence(draw, words: list[str]) -> str:
    return (
        draw(punctuation) + "".join(w + draw(separator) for w in words[:-1]) + words[-1] + draw(punctuation)
    )


@given(data=st.data(), entry=st.sampled_from(ALL), times=st.integers(1, 3))
@settings(max_examples=300, deadline=None)
def test_a_reply_of_only_a_keyword_has_its_intent(data, entry, times):
    _lang, intent, keyword = entry
    text = sentence(data.draw, [data.draw(spelled(keyword)) for _ in range(times)])
    assert verdict(text) == (intent, plain(keyword), language_of(keyword)), text


@given(
    data=st.data(), first=st.sampled_from(ALL), more=st.lists(st.sampled_from(ALL), min_size=1, max_size=2)
)
@settings(max_examples=150, deadline=None)
def test_a_reply_of_only_keywords_of_one_intent_has_it(data, first, more):
    more = [entry for entry in more if entry[1] is first[1]]
    keywords = [first[2]] + [kw for _, _, kw in more]
    text = sentence(data.draw, [data.draw(spelled(kw)) for kw in keywords])
    assert verdict(text) == (first[1], plain(first[2]), language_of(first[2])), text


@given(data=st.data(), entry=st.sampled_from(STRONG), rest=st.lists(free_word, min_size=1, max_size=6))
@settings(max_examples=200, deadline=None)
def test_a_keyword_first_gives_its_intent(data, entry, rest):
    _lang, intent, keyword = entry
    text = sentence(data.draw, [data.draw(spelled(keyword)), *rest])
    assert verdict(text) == (intent, plain(keyword), language_of(keyword)), text


@given(
    data=st.data(),
    entry=st.sampled_from(STRONG),
    before=st.lists(free_word, min_size=1, max_size=4),
    after=st.lists(free_word, max_size=4),
)
@settings(max_examples=200, deadline=None)
def test_a_keyword_after_other_words_is_for_a_person(data, entry, before, after):
    _lang, _intent, keyword = entry
    text = sentence(data.draw, [*before, data.draw(spelled(keyword)), *after])
    assert verdict(text) == (AMBIGUOUS, plain(keyword), language_of(keyword)), text


@given(
    data=st.data(),
    entry=st.sampled_from(WEAK),
    before=st.lists(free_word, max_size=3),
    after=st.lists(free_word, max_size=3),
)
@settings(max_examples=100, deadline=None)
def test_a_whole_reply_only_keyword_among_other_words_is_free_text(data, entry, before, after):
    if not before and not after:
        after = ["please"]
    text = sentence(data.draw, [*before, data.draw(spelled(entry[2])), *after])
    assert verdict(text) == (NONE, None, None), text


@given(
    data=st.data(),
    stop=st.sampled_from([e for e in ALL if e[1] is STOP]),
    start=st.sampled_from([e for e in ALL if e[1] is START]),
    start_first=st.booleans(),
)
@settings(max_examples=150, deadline=None)
def test_stop_and_start_keywords_alone_are_for_a_person(data, stop, start, start_first):
    first, second = (start, stop) if start_first else (stop, start)
    text = sentence(data.draw, [data.draw(spelled(first[2])), data.draw(spelled(second[2]))])
    assert verdict(text) == (AMBIGUOUS, plain(first[2]), language_of(first[2])), text


@given(
    data=st.data(),
    first=st.sampled_from(STRONG),
    middle=st.lists(free_word, max_size=3),
    other=st.sampled_from(STRONG),
)
@settings(max_examples=150, deadline=None)
def test_a_keyword_first_then_one_of_the_other_intent_is_for_a_person(data, first, middle, other):
    if other[1] is first[1]:
        other = next(e for e in STRONG if e[1] is not first[1])
    middle = middle or ["no"]
    text = sentence(data.draw, [data.draw(spelled(first[2])), *middle, data.draw(spelled(other[2]))])
    assert verdict(text) == (AMBIGUOUS, plain(first[2]), language_of(first[2])), text


@given(data=st.data(), words=st.lists(st.one_of(containing_word, free_word), min_size=1, max_size=6))
@settings(max_examples=200, deadline=None)
def test_words_that_contain_a_keyword_are_free_text(data, words):
    text = sentence(data.draw, words)
    assert verdict(text) == (NONE, None, None), text
