"""Hostile or absurd requests get each API's own 4xx error, never a bare 500 (issue 14, item 11)."""

from __future__ import annotations

import json

import pytest

from airflow_provider_sms.sandbox import delivery

from .helpers import NL, SMSTOOLS_AUTH, TEXTBOOST_AUTH

JSON = {"Content-Type": "application/json"}
ABYSS = "[" * 100_000 + "]" * 100_000  # far past Python's recursion limit


def nested(depth: int) -> str:
    """A JSON list nested ``depth`` levels deep."""
    return "[" * depth + "]" * depth


def smstools_send(**fields: object) -> str:
    """A Smstools send body as JSON text, with the values given as raw JSON text."""
    body = {"message": '"Hi"', "sender": '"Shop"', "to": f'"{NL}"', **fields}
    return "{" + ",".join(f'"{name}":{value}' for name, value in body.items()) + "}"


@pytest.mark.parametrize(
    "body",
    [ABYSS, smstools_send(to=ABYSS), smstools_send(subid=nested(32)), smstools_send(subid="NaN")],
    ids=["abyss", "abyss-in-a-field", "33-levels", "NaN"],
)
def test_smstools_answers_error_114_to_deep_or_non_standard_json(sandbox, http, body):
    response = http.post(f"{sandbox.url}/v1/message/send", data=body, headers={**SMSTOOLS_AUTH, **JSON})
    assert response.status_code == 400
    assert response.json()["error"] == 114
    assert "nested more than 32 levels" in response.json()["errorMsg"] or "NaN" in response.json()["errorMsg"]
    assert sandbox.messages() == []
    assert http.get(f"{sandbox.url}/v1/message/logging", headers=SMSTOOLS_AUTH).status_code == 200


def test_smstools_takes_json_nested_32_levels(sandbox, http):
    body = smstools_send(subid=nested(31))  # in the body's object: 32 levels
    response = http.post(f"{sandbox.url}/v1/message/send", data=body, headers={**SMSTOOLS_AUTH, **JSON})
    assert response.status_code == 200 and "messageid" in response.json()


def test_smsgateway24_answers_its_error_envelope_to_deep_json(sandbox, http, sg24_token):
    as_body = http.post(f"{sandbox.url}/getdata/addsms", data='{"sendto": ' + ABYSS + "}", headers=JSON)
    assert as_body.status_code == 200
    assert as_body.json() == {"error": 1, "message": "the JSON is nested more than 32 levels deep"}
    datajson = json.dumps({"token": sg24_token, "smsdata": []})[:-1] + ', "x": ' + ABYSS + "}"
    in_field = http.post(f"{sandbox.url}/getdata/addalotofsms", data={"datajson": datajson})
    assert in_field.json() == {
        "error": 1,
        "message": "Field datajson: the JSON is nested more than 32 levels deep",
    }
    assert sandbox.messages() == []


def test_textboost_answers_its_error_envelope_to_deep_json(sandbox, http):
    response = http.post(
        f"{sandbox.url}/api/v3/sms/send",
        data='{"recipient": ' + ABYSS + "}",
        headers={**TEXTBOOST_AUTH, **JSON},
    )
    assert response.status_code == 400
    assert response.json() == {"status": "error", "message": "the JSON is nested more than 32 levels deep"}


def test_the_admin_api_answers_400_to_deep_json(sandbox, http):
    for path in ("advance", "faults"):
        response = http.post(f"{sandbox.url}/_sandbox/{path}", data=ABYSS, headers=JSON)
        assert response.status_code == 400 and "nested" in response.json()["detail"]


@pytest.mark.parametrize("page", [str(2**31), str(2**63), "9" * 5000, "0"])
def test_smstools_refuses_absurd_pages_with_error_136(sandbox, http, page):
    response = http.get(f"{sandbox.url}/v1/message/logging", params={"page": page}, headers=SMSTOOLS_AUTH)
    assert response.status_code == 400
    assert response.json() == {
        "error": 136,
        "errorMsg": "The page parameter must be an integer from 1 to 2147483647.",
    }


@pytest.mark.parametrize("page", [str(2**31), str(2**63), "9" * 5000])
def test_textboost_refuses_absurd_pages_with_422(sandbox, http, page):
    response = http.get(f"{sandbox.url}/api/v3/sms", params={"page": page}, headers=TEXTBOOST_AUTH)
    assert response.status_code == 422
    assert response.json() == {
        "status": "error",
        "message": "The page must be an integer from 1 to 2147483647.",
    }


def test_the_last_allowed_page_is_an_empty_page(sandbox, http):
    page = str(2**31 - 1)
    smstools = http.get(f"{sandbox.url}/v1/contact", params={"page": page}, headers=SMSTOOLS_AUTH).json()
    assert (smstools["page"], smstools["contacts"]) == (2**31 - 1, [])
    textboost = http.get(f"{sandbox.url}/api/v3/contacts", params={"page": page}, headers=TEXTBOOST_AUTH)
    assert textboost.json()["data"]["data"] == []


def test_an_unexpected_error_is_a_500_in_the_gateways_own_envelope(sandbox, http, sg24_token, monkeypatch):
    sent = http.post(
        f"{sandbox.url}/v1/message/send",
        json={"message": "Hi", "sender": "Shop", "to": NL},
        headers=SMSTOOLS_AUTH,
    )
    sms_id = http.post(
        f"{sandbox.url}/getdata/addsms",
        data={"token": sg24_token, "sendto": "+" + NL, "body": "Hi", "device_id": 1001},
    ).json()["sms_id"]
    http.post(
        f"{sandbox.url}/api/v3/sms/send",
        json={"recipient": NL, "sender_id": "Shop", "type": "plain", "message": "Hi"},
        headers=TEXTBOOST_AUTH,
    )

    def broken(*args: object) -> None:
        raise RuntimeError("a bug in the sandbox")

    # The sandbox serves from a thread of this process: a broken status function is a bug in every API.
    monkeypatch.setattr(delivery, "raw_status", broken)
    smstools = http.get(f"{sandbox.url}/v1/message/logging", headers=SMSTOOLS_AUTH)
    assert (smstools.status_code, smstools.json()["error"]) == (500, 105)
    sg24 = http.post(f"{sandbox.url}/getdata/getsmsstatus", data={"token": sg24_token, "sms_id": sms_id})
    assert (sg24.status_code, sg24.json()) == (500, {"error": 1, "message": "Internal server error"})
    textboost = http.get(f"{sandbox.url}/api/v3/sms", headers=TEXTBOOST_AUTH)
    assert (textboost.status_code, textboost.json()) == (500, {"status": "error", "message": "Server Error"})
    assert sent.status_code == 200
