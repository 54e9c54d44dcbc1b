"""The hooks' fast paths give exactly what the plain code they replaced gave: answers read by
msgspec with json.loads deciding whatever msgspec refuses, and SmsGateway24's addalotofsms form body
percent-encoded byte for byte as urlencode writes it."""

from __future__ import annotations

import json
import random
from urllib.parse import quote_plus, urlencode

import pytest

from airflow_provider_sms.hooks.base import Call, _loads
from airflow_provider_sms.hooks.smsgateway24 import SmsGateway24Hook, _quote_plus

ANSWERS = [
    b'{"messageids": ["e0ncuxht345hjmbjvv2feky0azflcw", null], "errors": [{"error": 103}]}',
    b'{"total": 2, "messages": [{"ID": 1, "to": "31612345678", "response": {"status": "sent"}}]}',
    b'{"a": 1, "a": 2, "n": [1.5, -0.0, 1e300, 12345678901234567890123456789, 0.1e1]}',
    b'{"text": "caf\\u00e9 \\ud83d\\ude00", "raw": "caf\xc3\xa9"}',
    b"1e400",  # json.loads: inf; msgspec refuses it
    b"[NaN, Infinity, -Infinity]",  # json.loads takes them
    b'"\\ud800"',  # a lone surrogate, escaped
    b'"\xed\xa0\x80"',  # a lone surrogate, raw (surrogatepass)
    b"\xef\xbb\xbf{}",  # a BOM
    '{"x": "é"}'.encode("utf-16"),
    b'{"messages": [{"ID": 1}, {"ID": 2',  # cut off
    b"<html><body>502 Bad Gateway</body></html>",
    b'"\xff"',
    b'"tab\there"',
    b"[1,]",
    b"01",
    b"1" * 5000,
    b'{"a": 1} trailing',
    b"[" * 100_000 + b"]" * 100_000,
]


@pytest.mark.parametrize("body", ANSWERS, ids=range(len(ANSWERS)))
def test_answers_read_as_json_loads_reads_them(body):
    try:
        expected = json.loads(body)
    except (ValueError, RecursionError) as exc:
        with pytest.raises(type(exc)) as raised:
            _loads(body)
        assert str(raised.value) == str(exc)
    else:
        got = _loads(body)
        assert repr(got) == repr(expected)  # same values and types (1.0 is no 1, -0.0 no 0)


def test_quote_plus_is_urllibs():
    rng = random.Random(24)
    alphabet = 'ab Z09 %+&=/"{}:,\\éЖ€😀\n\t~_.-\x00\x7f'
    texts = ["", " ", "%", "%25", "+ +", "".join(map(chr, range(256)))]
    texts += ["".join(rng.choice(alphabet) for _ in range(rng.randrange(60))) for _ in range(3000)]
    texts.append("".join(chr(rng.randrange(1, 0xD7FF)) for _ in range(20_000)))
    for text in texts:
        assert _quote_plus(text).decode("ascii") == quote_plus(text, safe="")


def test_addalotofsms_body_is_the_urlencoded_form(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_HOT_SG24",
        json.dumps(
            {"conn_type": "smsgateway24", "host": "http://127.0.0.1:9", "login": "a@b.c", "password": "p"}
        ),
    )
    hook = SmsGateway24Hook("hot_sg24")
    hook._token = "t0ken"
    rows = [{"sendto": "+31612345678", "body": "Hé & bye +1 100%", "device_id": 1001, "customerid": 7}]
    call = Call("POST", "addalotofsms", data={"datajson": {"smsdata": rows}}, creates_messages=True)
    sent = hook._authorize(call)
    expected = urlencode({"datajson": json.dumps({"token": "t0ken", "smsdata": rows})}).encode()
    assert sent.data == expected
    assert sent.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert call.data == {"datajson": {"smsdata": rows}}  # the call itself is left as it was (retries)
