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


def _reference_send_bodies(hook, messages):
    """Smstools' send bodies as send_batch built them before its fast path: the options tuple read
    per message and every number normalised again by ``_send_body``."""
    import pendulum

    from airflow_provider_sms.hooks.smstools import SEND_OPTIONS
    from airflow_provider_sms.messages import InvalidPhoneNumberError, as_utc

    groups: dict = {}
    now = pendulum.now("UTC")
    for index, m in enumerate(messages):
        try:
            hook.wire_phone(m.to)
        except InvalidPhoneNumberError:
            continue
        send_at = m.send_at if m.send_at is not None and as_utc(m.send_at) > now else None
        options = tuple((k, m.options[k]) for k in SEND_OPTIONS if k in m.options)
        groups.setdefault((m.body, m.sender, send_at, options), []).append(index)
    bodies = []
    for (body, sender, send_at, options), rows in groups.items():
        reference = next((messages[i].key for i in rows if messages[i].key), None)
        to = [messages[i].to for i in rows]
        bodies.append(hook._send_body(to, body, sender, send_at, reference, **dict(options)))
    return bodies


def test_smstools_send_batch_bodies_are_the_reference_ones(monkeypatch):
    """send_batch reuses the numbers wire_numbers normalised and one options tuple per options
    mapping: the request bodies are byte for byte those of the plain path, over mixed formats,
    unreadable numbers, senders, schedules and options (shared, equal and distinct mappings)."""
    import datetime as dt

    from airflow_provider_sms.hooks.smstools import SmstoolsHook
    from airflow_provider_sms.messages import OutboundMessage

    monkeypatch.setenv("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
    monkeypatch.setenv(
        "AIRFLOW_CONN_SMSTOOLS_HOT",
        json.dumps(
            {
                "conn_type": "smstools",
                "host": "https://api.example.test",
                "login": "id",
                "password": "secret",
                "extra": {"sender_id": "Shop"},
            }
        ),
    )
    hook = SmstoolsHook("smstools_hot")
    sent: list[dict] = []

    def request(call):
        sent.append(call.json)
        return {"messageids": [f"id{len(sent)}-{i}" for i in range(len(call.json["to"]))]}

    monkeypatch.setattr(hook, "request", request)
    rng = random.Random(20)
    shared = {"test": True}
    options = [{}, shared, shared, {"test": True}, {"subid": "a", "test": True}, {"subid": "b", "sim": 2}]
    formats = ["+316{:08d}", "0031 6 {:08d}", "+31 (6) {:08d}", "00316-{:08d}", "316{:08d}"]
    schedules = [
        None,
        dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc),
        dt.datetime(2100, 1, 1, tzinfo=dt.timezone.utc),
    ]
    for _ in range(40):
        messages = []
        for i in range(rng.randrange(1, 60)):
            to = rng.choice(formats).format(rng.randrange(10**8))
            if rng.random() < 0.1:
                to = rng.choice(["not a number", "", "+999123", "+3161234"])
            messages.append(
                OutboundMessage(
                    to=to,
                    body=rng.choice(["Hi", "Sale é", "Hi"]),
                    key=rng.choice([None, str(i + 1)]),
                    sender=rng.choice([None, "Shop", "Other"]),
                    send_at=rng.choice(schedules),
                    options=rng.choice(options),
                )
            )
        want = _reference_send_bodies(hook, messages)
        sent.clear()
        results = hook.send_batch(messages)
        assert json.dumps(sent) == json.dumps(want)
        assert len(results) == len(messages)
