"""The sandbox's fast paths give exactly what the plain code they replaced gave: JSON read by msgspec
with json deciding what msgspec refuses, answers written by msgspec, HMAC messageids from precomputed
pads, reply draws from one struct call."""

from __future__ import annotations

import hashlib
import hmac
import json
import random

import pytest
from fastapi.responses import JSONResponse

from airflow_provider_sms.sandbox import replies
from airflow_provider_sms.sandbox.common import BadBody, TooDeep, loads_json, respond
from airflow_provider_sms.sandbox.smstools import message_id

# Texts msgspec reads, and texts only json reads or nobody does (BOM, UTF-16, NaN, lone surrogates...).
JSON_TEXTS = [
    b'{"to": ["31612345678", 31612345679], "message": "Hi \\u00e9\\ud83d\\ude00", "test": false}',
    b'{"a": 1, "a": 2, "b": [1.5, -0.0, 1e300, 12345678901234567890123456789]}',
    b"1e400",
    b"-1e400",
    b'"\\ud800"',
    b'"\xed\xa0\x80"',
    b"\xef\xbb\xbf{}",
    '{"x": "é"}'.encode("utf-16"),
    '{"x": "é"}'.encode("utf-32-le"),
    b"NaN",
    b"[Infinity]",
    b"[1,]",
    b'{"a" 1}',
    b'"\xff"',
    b'"tab\there"',
    b"01",
    b"1" * 5000,
    b'{"a": 1} x',
    b"  [ ]  ",
    b"[" * 40 + b"]" * 40,
    b"[" * 5000 + b"]" * 5000,
    b"[" * 31 + b"]" * 31,
]


def _depth(value: object) -> int:
    if isinstance(value, dict):
        value = list(value.values())
    return 1 + max(map(_depth, value), default=0) if isinstance(value, list) else 0


def _reference(text: str) -> object:
    """What loads_json answered before msgspec: json alone."""
    decoder = json.JSONDecoder(parse_constant=lambda name: (_ for _ in ()).throw(ValueError(name)))
    try:
        data = decoder.decode(text)
    except RecursionError:
        return TooDeep
    except ValueError:
        return BadBody
    return TooDeep if _depth(data) > 32 else data


@pytest.mark.parametrize("raw", JSON_TEXTS, ids=range(len(JSON_TEXTS)))
def test_loads_json_reads_what_json_reads(raw):
    try:
        text = raw.decode(json.detect_encoding(raw), "surrogatepass")
    except UnicodeDecodeError:
        with pytest.raises(BadBody):
            loads_json(raw)
        return
    expected = _reference(text)
    for given in (raw, text):  # request bodies are bytes, SmsGateway24's datajson field is text
        if expected in (BadBody, TooDeep):
            with pytest.raises(expected):
                loads_json(given)
        else:
            got = loads_json(given)
            assert got == expected and repr(got) == repr(expected)  # same types: 1.0 is no 1, -0.0 no 0


def test_loads_json_error_message_is_jsons():
    with pytest.raises(BadBody, match=r"not valid JSON: Expecting property name enclosed in double quotes"):
        loads_json(b"{,}")


@pytest.mark.parametrize(
    "data",
    [
        {"messageids": ["abc", None], "errors": [{"error": 103, "errorMsg": "Phone number 12 is not valid"}]},
        {"message": 'é € 😀 \u2028 "quoted" \\ </script>', "n": -3, "f": 1.25, "ok": True},
        [{"id": 1}, {"id": 2}],
        {"big": 2**70},  # beyond msgspec's integers: JSONResponse writes it
        {1: "int key"},
        "text",
        None,
    ],
)
def test_respond_writes_what_jsonresponse_writes(data):
    answer = respond(data, 201, {"X-Test": "1"})
    reference = JSONResponse(data, status_code=201, headers={"X-Test": "1"})
    assert answer.body == reference.body
    assert answer.status_code == 201
    assert answer.headers["content-type"] == reference.headers["content-type"]
    assert answer.headers["x-test"] == "1"


def _reference_message_id(seq: int, salt: str) -> str:
    number = int.from_bytes(hmac.new(salt.encode(), str(seq).encode(), hashlib.sha256).digest(), "big")
    chars = []
    for _ in range(30):
        number, rest = divmod(number, 36)
        chars.append("0123456789abcdefghijklmnopqrstuvwxyz"[rest])
    return "".join(chars)


@pytest.mark.parametrize(
    "salt", ["", "salt", "0123456789abcdef" * 2, "k" * 64, "k" * 65, "é" * 40, "z" * 300]
)
def test_message_ids_are_the_hmac_definition(salt):
    for seq in [*range(0, 500), 10**12, 2**63]:
        assert message_id(seq, salt) == _reference_message_id(seq, salt)


def test_reply_draws_are_the_digest_definition():
    rng = random.Random(20)
    for _ in range(2000):
        number = "+" + str(rng.randrange(10**7, 10**15))
        digest = hashlib.sha256(f"sandbox reply {number}".encode()).digest()
        expected = tuple(int.from_bytes(digest[i : i + 6], "big") / 2**48 for i in range(0, 30, 6))
        assert replies._draws.__wrapped__(number) == expected
