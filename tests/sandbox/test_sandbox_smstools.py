"""Smstools v1 API of the sandbox, through plain HTTP: status codes, shapes and the vendor's errors."""

from __future__ import annotations

import re

import pytest
import requests

from airflow_provider_sms.sandbox.smstools import message_id
from airflow_provider_sms.sandbox.testing import run_sandbox

from .helpers import NL, SMSTOOLS_AUTH, US, later

POSSIBLE_NOT_VALID = "+3161245678"  # the recorded call: accepted by the real service, fails later

ENDPOINTS = [
    ("POST", "/v1/message/send"),
    ("POST", "/v1/voice/send"),
    ("GET", "/v1/message/logging"),
    ("GET", "/v1/outbox"),
    ("DELETE", "/v1/outbox/1"),
    ("GET", "/v1/message/inbox"),
    ("GET", "/v1/balance"),
    ("GET", "/v1/account"),
    ("POST", "/v1/contact"),
    ("PATCH", "/v1/contact"),
    ("DELETE", "/v1/contact/1"),
    ("GET", "/v1/contact"),
    ("GET", "/v1/contact/search/ann"),
    ("POST", "/v1/groups"),
    ("PATCH", "/v1/groups"),
    ("GET", "/v1/groups"),
    ("GET", "/v1/groups/1"),
    ("DELETE", "/v1/groups/1"),
    ("GET", "/v1/senderids"),
    ("GET", "/v1/optouts/list"),
    ("POST", "/v1/format/number"),
]


@pytest.fixture
def api(sandbox, http):
    def call(method, path, **kwargs):
        return http.request(method, sandbox.url + path, headers=SMSTOOLS_AUTH, **kwargs)

    return call


@pytest.fixture
def group_id(api):
    return api("POST", "/v1/groups", json={"name": "Customers"}).json()["ID"][0]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
@pytest.mark.parametrize(
    "headers",
    [{}, {"X-Client-Id": "sandbox-client-id", "X-Client-Secret": "wrong"}],
    ids=["no-credentials", "wrong-secret"],
)
def test_every_endpoint_refuses_wrong_credentials_with_401(sandbox, http, method, path, headers):
    response = http.request(method, sandbox.url + path, headers=headers, json={})
    assert response.status_code == 401
    assert response.json() == {"error": 104, "errorMsg": "Invalid credentials."}


def test_send_to_one_number_answers_a_messageid_and_stores_it(sandbox, api):
    response = api(
        "POST", "/v1/message/send", json={"message": "Hello", "sender": "Shop", "to": NL, "reference": "k1"}
    )
    assert response.status_code == 200
    messageid = response.json()["messageid"]
    # As the real service's (e0ncuxht345hjmbjvv2feky0azflcw): 30 lower-case letters and digits.
    assert isinstance(messageid, str) and re.fullmatch(r"[a-z0-9]{30}", messageid)
    (stored,) = sandbox.messages("smstools")
    assert (stored["id"], stored["recipient"], stored["body"], stored["reference"]) == (
        messageid,
        "+" + NL,
        "Hello",
        "k1",
    )
    assert (stored["status"], stored["normalized_status"], stored["count"]) == ("queued", "queued", 1)


def test_send_to_an_array_aligns_ids_with_to_and_reports_each_invalid_number(sandbox, api):
    response = api(
        "POST", "/v1/message/send", json={"message": "Hi", "sender": "Shop", "to": [NL, "5512", "+" + US]}
    )
    assert response.status_code == 200
    body = response.json()
    assert len(body["messageids"]) == 3 and body["messageids"][1] is None
    assert all(body["messageids"][i] for i in (0, 2))
    assert body["errors"] == [{"error": 103, "errorMsg": "Phone number 5512 is not valid"}]
    assert sorted(m["recipient"] for m in sandbox.messages("smstools")) == sorted(["+" + NL, "+" + US])


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        ({"sender": "Shop", "to": NL}, 102, "No message provided."),
        (
            {"message": "x" * 613, "sender": "Shop", "to": NL},
            118,
            "SMS message cannot be longer than 612 characters.",
        ),
        ({"message": "Hi", "to": NL}, 109, "Sender name cannot be empty."),
        ({"message": "Hi", "sender": "TwelveLetter", "to": NL}, 111, None),
        ({"message": "Hi", "sender": "Shop"}, 106, "Destination number is missing."),
        ({"message": "Hi", "sender": "Shop", "to": []}, 106, "Destination number is missing."),
        ({"message": "Hi", "sender": "Shop", "to": "5512"}, 103, "Phone number 5512 is not valid"),
        ({"message": "Hi", "sender": "Shop", "to": NL, "date": "2001-01-01 10:00"}, 121, None),
        ({"message": "Hi", "sender": "Shop", "to": NL, "date": "tomorrow"}, 121, None),
        ({"message": "Hi", "sender": "Shop", "to": NL, "reference": "r" * 256}, 139, None),
    ],
)
def test_send_validation_errors_use_the_vendor_codes(sandbox, api, body, code, message):
    response = api("POST", "/v1/message/send", json=body)
    assert response.status_code == 400
    assert response.json()["error"] == code
    if message:
        assert response.json()["errorMsg"] == message
    assert sandbox.messages() == []


def test_a_body_that_is_not_json_is_error_114(api):
    response = api("POST", "/v1/message/send", data="message=hi")
    assert (response.status_code, response.json()["error"]) == (400, 114)


def test_test_mode_validates_but_stores_and_charges_nothing(sandbox, api):
    credits = api("GET", "/v1/balance").json()["credits"]
    response = api(
        "POST", "/v1/message/send", json={"message": "Hi", "sender": "Shop", "to": NL, "test": True}
    )
    assert response.status_code == 200 and response.json()["messageid"]
    assert sandbox.messages() == []
    assert api("GET", "/v1/balance").json()["credits"] == credits
    invalid = api(
        "POST", "/v1/message/send", json={"message": "Hi", "sender": "Shop", "to": "12", "test": True}
    )
    assert invalid.json()["error"] == 103


def test_voice_send_stores_a_voice_message_and_checks_gender_and_language(sandbox, api):
    body = {
        "message": "Your code is 1234",
        "sender": "3197010",
        "to": NL,
        "gender": "Female",
        "language": "en",
    }
    response = api("POST", "/v1/voice/send", json=body)
    assert response.status_code == 200 and response.json()["messageid"]
    assert sandbox.messages("smstools")[0]["type"] == "voice"
    bad = api("POST", "/v1/voice/send", json={**body, "gender": "robot"})
    assert (bad.status_code, bad.json()["error"]) == (400, 139)
    bad = api("POST", "/v1/voice/send", json={**body, "language": "xx"})
    assert (bad.status_code, bad.json()["error"]) == (400, 139)


@pytest.mark.parametrize(
    "body",
    [
        {"message": "Your code is 1234", "to": NL},  # what the vendor's SDK sends
        {"message": "Your code is 1234", "to": NL, "sender": "Shop"},  # the recorded real call
    ],
    ids=["sdk", "recorded"],
)
def test_voice_send_needs_no_sender_gender_or_language(sandbox, api, body):
    response = api("POST", "/v1/voice/send", json=body)
    assert response.status_code == 200, response.text
    assert re.fullmatch(r"[a-z0-9]{30}", response.json()["messageid"])
    stored = sandbox.messages("smstools")[0]
    assert (stored["type"], stored["sender"]) == ("voice", body.get("sender"))


def test_an_sms_still_needs_a_sender(api):
    response = api("POST", "/v1/message/send", json={"message": "Hi", "to": NL})
    assert response.json()["error"] == 109


def test_reference_takes_up_to_255_characters(sandbox, api):
    reference = "r" * 255
    response = api(
        "POST", "/v1/message/send", json={"message": "Hi", "sender": "Shop", "to": NL, "reference": reference}
    )
    assert response.status_code == 200
    assert sandbox.messages("smstools")[0]["reference"] == reference


def test_a_possible_but_invalid_number_is_accepted_and_fails_at_delivery(sandbox, api):
    """As the real service: ``+3161245678`` gets a messageid at submission and fails later."""
    body = {"message": "Hi", "sender": "Shop", "to": POSSIBLE_NOT_VALID}
    response = api("POST", "/v1/message/send", json=body)
    assert response.status_code == 200, response.text
    messageid = response.json()["messageid"]
    batch = api("POST", "/v1/message/send", json={**body, "to": [NL, "3161245678", "5512"]}).json()
    assert batch["messageids"][2] is None and all(batch["messageids"][:2])  # 5512 is not even possible
    assert batch["errors"] == [{"error": 103, "errorMsg": "Phone number 5512 is not valid"}]
    sandbox.advance(10)
    logged = {m["message_ID"]: m for m in api("GET", "/v1/message/logging").json()["messages"]}
    assert logged[messageid]["status"] == "failed" and logged[messageid]["to"] == "3161245678"
    assert logged[batch["messageids"][1]]["status"] == "failed"
    assert logged[batch["messageids"][0]]["status"] == "delivered"


def test_validating_at_submission_refuses_a_possible_but_invalid_number():
    with run_sandbox(frozen_clock=True, smstools_validate_at_submission=True) as server:
        response = requests.post(
            f"{server.url}/v1/message/send",
            headers=SMSTOOLS_AUTH,
            json={"message": "Hi", "sender": "Shop", "to": POSSIBLE_NOT_VALID},
            timeout=10,
        )
        assert response.status_code == 400
        assert response.json() == {
            "error": 103,
            "errorMsg": f"Phone number {POSSIBLE_NOT_VALID} is not valid",
        }
        assert server.messages() == []


def test_messageids_are_deterministic_per_salt_and_distinct():
    assert message_id(7, "salt") == message_id(7, "salt")
    assert message_id(7, "salt") != message_id(7, "other")
    ids = {message_id(seq, "salt") for seq in range(1, 20_001)}
    assert len(ids) == 20_000 and all(re.fullmatch(r"[a-z0-9]{30}", i) for i in ids)


def test_messageids_are_never_reused_after_a_restart(tmp_path):
    state_file = str(tmp_path / "state.db")
    body = {"message": "Hi", "sender": "Shop", "to": NL}
    seen = set()
    for _ in range(2):  # the second sandbox reads the state file of the first
        with run_sandbox(frozen_clock=True, state_file=state_file) as server:
            for _ in range(3):
                answer = requests.post(
                    f"{server.url}/v1/message/send", headers=SMSTOOLS_AUTH, json=body, timeout=10
                )
                seen.add(answer.json()["messageid"])
    assert len(seen) == 6


def test_logging_pages_through_messages_with_their_status(api):
    for i in range(5):
        api("POST", "/v1/message/send", json={"message": f"m{i}", "sender": "Shop", "to": NL})
    page = api("GET", "/v1/message/logging", params={"limit": 2, "page": 3}).json()
    assert {k: page[k] for k in ("total", "shown", "page", "limit")} == {
        "total": 5,
        "shown": 1,
        "page": 3,
        "limit": 2,
    }
    (item,) = page["messages"]
    assert set(item) >= {"ID", "message_ID", "message", "to", "sender", "date", "type", "status", "response"}
    assert (item["message"], item["to"], item["type"], item["status"]) == ("m4", NL, "sms", "queued")
    assert api("GET", "/v1/message/logging").json()["limit"] == 100


@pytest.mark.parametrize(
    ("params", "code"),
    [({"limit": 0}, 135), ({"limit": 2001}, 135), ({"page": 0}, 136), ({"page": "x"}, 136)],
)
def test_list_paging_parameters_are_checked(api, params, code):
    response = api("GET", "/v1/message/logging", params=params)
    assert (response.status_code, response.json()["error"]) == (400, code)


def test_a_scheduled_message_waits_in_the_outbox_and_can_be_cancelled(sandbox, api):
    date = later(sandbox, "%Y-%m-%d %H:%M", hours=2)
    messageid = api(
        "POST", "/v1/message/send", json={"message": "Later", "sender": "Shop", "to": NL, "date": date}
    ).json()["messageid"]
    outbox = api("GET", "/v1/outbox").json()
    assert outbox["total"] == 1
    (item,) = outbox["messages"]
    assert (item["messageid"], item["date"], item["to"]) == (messageid, date, NL)
    assert sandbox.messages()[0]["status"] == "scheduled"
    deleted = api("DELETE", f"/v1/outbox/{item['ID']}")
    assert deleted.status_code == 200 and deleted.json()["deleted"] is True
    assert sandbox.messages() == [] and api("GET", "/v1/outbox").json()["total"] == 0
    missing = api("DELETE", f"/v1/outbox/{messageid}")
    assert (missing.status_code, missing.json()["error"]) == (404, 133)


def test_inbox_is_an_empty_page(api):
    inbox = api("GET", "/v1/message/inbox").json()
    assert inbox == {"total": 0, "shown": 0, "page": 1, "limit": 100, "messages": []}
    assert api("GET", "/v1/message/inbox", params={"limit": 5000}).json()["error"] == 135


def test_balance_falls_by_one_credit_per_segment_and_account_shows_it(api):
    before = float(api("GET", "/v1/balance").json()["credits"])
    api(
        "POST", "/v1/message/send", json={"message": "x" * 200, "sender": "Shop", "to": [NL, US]}
    )  # 2 segments
    balance = api("GET", "/v1/balance").json()
    assert float(balance["credits"]) == before - 4
    assert (balance["currency"], balance["use"]) == ("EUR", 4)
    account = api("GET", "/v1/account").json()
    assert set(account) >= {"username", "email", "credits", "currency", "webhookurl"}
    assert account["credits"] == balance["credits"]


def test_contacts_single_batch_update_list_search_and_delete(sandbox, api, group_id):
    single = api("POST", "/v1/contact", json={"phone": NL, "groupid": group_id, "firstname": "Ann"})
    assert single.status_code == 200
    (contact_id,) = single.json()["ID"]
    batch = api(
        "POST",
        "/v1/contact",
        json=[
            {"phone": US, "groupid": group_id, "extra1": "vip", "birthday": "1990-05-01"},
            {"phone": "5512", "groupid": group_id},
            {"phone": NL, "groupid": 999},
        ],
    ).json()
    assert len(batch["IDs"]) == 1
    assert batch["errors"] == [
        {"error": 103, "errorMsg": "Phone number 5512 is not valid"},
        {"error": 125, "errorMsg": "Group not found."},
    ]

    updated = api("PATCH", "/v1/contact", json={"ID": contact_id, "lastname": "de Vries", "unsubscribed": 1})
    assert updated.status_code == 200
    assert {
        k: updated.json()[k] for k in ("ID", "phone", "firstname", "lastname", "unsubscribed", "groupid")
    } == {
        "ID": contact_id,
        "phone": NL,
        "firstname": "Ann",
        "lastname": "de Vries",
        "unsubscribed": 1,
        "groupid": group_id,
    }
    listed = api("GET", "/v1/contact").json()
    assert (listed["total"], len(listed["contacts"])) == (2, 2)
    assert set(listed["contacts"][1]) >= {"ID", "phone", "email", "birthday", "extra1", "extra8"}
    assert listed["contacts"][1]["extra1"] == "vip"
    found = api("GET", "/v1/contact/search/vries").json()
    assert [c["ID"] for c in found["contacts"]] == [contact_id]
    assert api("GET", "/v1/contact/search/nobody").json()["total"] == 0

    assert api("DELETE", f"/v1/contact/{contact_id}").json() == {"ID": contact_id, "deleted": True}
    assert [c["phone"] for c in sandbox.contacts("smstools")] == ["+" + US]


@pytest.mark.parametrize(
    ("method", "body", "status", "code"),
    [
        ("POST", {"groupid": "GROUP"}, 400, 103),
        ("POST", {"phone": "5512", "groupid": "GROUP"}, 400, 103),
        ("POST", {"phone": NL}, 400, 124),
        ("POST", {"phone": NL, "groupid": 999}, 400, 125),
        ("POST", {"phone": NL, "groupid": "GROUP", "birthday": "01/05/1990"}, 400, 139),
        ("POST", [], 400, 122),
        ("PATCH", {"firstname": "Ann"}, 400, 123),
        ("PATCH", {"ID": 42, "firstname": "Ann"}, 404, 139),
    ],
)
def test_contact_errors(api, group_id, method, body, status, code):
    if isinstance(body, dict) and body.get("groupid") == "GROUP":
        body = {**body, "groupid": group_id}
    response = api(method, "/v1/contact", json=body)
    assert (response.status_code, response.json()["error"]) == (status, code)


def test_deleting_an_unknown_contact_is_404(api):
    assert api("DELETE", "/v1/contact/42").status_code == 404


def test_groups_create_rename_list_show_and_delete(sandbox, api, group_id):
    assert api("POST", "/v1/groups", json={}).json()["error"] == 126
    renamed = api("PATCH", "/v1/groups", json={"ID": group_id, "name": "VIP"})
    assert renamed.json() == {"ID": group_id, "name": "VIP", "locked": 0}
    assert api("PATCH", "/v1/groups", json={"name": "x"}).json()["error"] == 123
    assert api("GET", "/v1/groups").json() == [{"id": group_id, "name": "VIP", "locked": 0}]
    for phone in (NL, US):
        api("POST", "/v1/contact", json={"phone": phone, "groupid": group_id})
    shown = api("GET", f"/v1/groups/{group_id}", params={"limit": 1, "page": 2}).json()
    assert shown["groupinfo"] == {"ID": group_id, "name": "VIP", "locked": 0}
    assert (shown["total"], shown["shown"], shown["contacts"][0]["phone"]) == (2, 1, US)
    assert api("DELETE", f"/v1/groups/{group_id}").json() == {"ID": group_id, "deleted": True}
    assert sandbox.contacts("smstools") == []  # the group's contacts went with it
    for method in ("GET", "DELETE"):
        missing = api(method, f"/v1/groups/{group_id}")
        assert (missing.status_code, missing.json()) == (404, {"error": 125, "errorMsg": "Group not found."})


def test_unknown_paths_answer_in_smstools_style(api):
    response = api("GET", "/v1/nothing-here")
    assert (response.status_code, response.json()) == (404, {"error": 404, "errorMsg": "Not found"})


# ---------------------------------------------------------------------------------------------- tools


def test_senderids_lists_the_accounts_senders(api):
    body = api("GET", "/v1/senderids").json()
    assert body["senderids"] and {"ID", "senderid", "status"} <= set(body["senderids"][0])


def test_optouts_list_pages_the_unsubscribed_numbers_once(sandbox, api, group_id):
    other = api("POST", "/v1/groups", json={"name": "Other"}).json()["ID"][0]
    rows = [
        {"phone": "31612345601", "groupid": group_id, "unsubscribed": 1},
        {"phone": "31612345602", "groupid": group_id},
        {"phone": "31612345603", "groupid": group_id, "unsubscribed": True},
        {"phone": "31612345601", "groupid": other, "unsubscribed": 1},  # the same number again
        {"phone": "31612345604", "groupid": other, "unsubscribed": "1"},
    ]
    assert "errors" not in api("POST", "/v1/contact", json=rows).json()
    first = api("GET", "/v1/optouts/list", params={"limit": 2, "page": 1}).json()
    second = api("GET", "/v1/optouts/list", params={"limit": 2, "page": 2}).json()
    assert (first["total"], first["shown"], first["page"], first["limit"]) == (3, 2, 1, 2)
    assert [o["phone"] for o in first["optouts"] + second["optouts"]] == [
        "31612345601",
        "31612345603",
        "31612345604",
    ]
    assert api("GET", "/v1/optouts/list", params={"limit": 0}).json()["error"] == 135
    assert api("GET", "/v1/optouts/list", params={"page": 0}).json()["error"] == 136


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"number": "0612345678", "countrycode": "NL"}, {"number": "31612345678", "countrycode": "NL"}),
        ({"number": "06 1234 5678", "countrycode": "31"}, {"number": "31612345678", "countrycode": "NL"}),
        ({"number": "+31612345678", "countrycode": "BE"}, {"number": "31612345678", "countrycode": "NL"}),
        ({"number": "12025550123"}, {"number": "12025550123", "countrycode": "US"}),
    ],
)
def test_format_number_answers_the_international_digits(api, body, expected):
    response = api("POST", "/v1/format/number", json=body)
    assert response.status_code == 200, response.text
    assert {k: response.json()[k] for k in expected} == expected


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"countrycode": "NL"}, 103),
        ({"number": "12", "countrycode": "NL"}, 103),
        ({"number": "061245678", "countrycode": "NL"}, 103),
        ({"number": "0612345678", "countrycode": "XX"}, 139),
    ],
)
def test_format_number_refuses_what_it_cannot_format(api, body, code):
    response = api("POST", "/v1/format/number", json=body)
    assert (response.status_code, response.json()["error"]) == (400, code)


def test_the_strings_style_answers_ids_as_strings_and_flags_as_booleans():
    with run_sandbox(frozen_clock=True, smstools_id_style="strings") as server, requests.Session() as http:
        http.headers.update(SMSTOOLS_AUTH)
        url = server.url + "/v1"
        group = http.post(f"{url}/groups", json={"name": "G"}).json()["ID"][0]
        assert isinstance(group, str)
        contact = http.post(f"{url}/contact", json={"phone": NL, "groupid": group, "unsubscribed": 1}).json()
        assert isinstance(contact["ID"][0], str)
        listed = http.get(f"{url}/contact").json()["contacts"][0]
        assert (listed["ID"], listed["groupid"], listed["unsubscribed"]) == (contact["ID"][0], group, True)
        assert http.get(f"{url}/groups").json()[0]["id"] == group
        http.post(f"{url}/message/send", json={"message": "Hi", "sender": "Shop", "to": NL})
        assert isinstance(http.get(f"{url}/message/logging").json()["messages"][0]["ID"], str)
        assert isinstance(http.get(f"{url}/balance").json()["use"], str)


@pytest.mark.parametrize(
    ("flags", "validate", "style"),
    [
        ([], False, "numbers"),
        (["--smstools-validate-at-submission", "--smstools-id-style", "strings"], True, "strings"),
        (["--no-smstools-validate-at-submission"], False, "numbers"),
    ],
)
def test_the_smstools_switches_on_the_command_line(flags, validate, style):
    from airflow_provider_sms.sandbox.__main__ import build_parser
    from airflow_provider_sms.sandbox.config import SandboxConfig

    args = vars(build_parser().parse_args(flags))
    for name in ("host", "port", "log_level"):
        args.pop(name)
    config = SandboxConfig.from_options(**args)
    assert (config.smstools_validate_at_submission, config.smstools_id_style) == (validate, style)
    with pytest.raises(ValueError, match="id style"):
        SandboxConfig(smstools_id_style="letters")
