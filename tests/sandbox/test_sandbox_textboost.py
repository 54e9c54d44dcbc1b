"""TextBoost API of the sandbox (``/api/v3`` and ``/api/http``), through plain HTTP."""

from __future__ import annotations

import re

import pytest

from airflow_provider_sms.sandbox.testing import run_sandbox

from .helpers import NL, NL_FAILED, NL_UNDELIVERED, TEXTBOOST_AUTH, TEXTBOOST_TOKEN, US, later

ENDPOINTS = [
    ("POST", "/contacts"),
    ("GET", "/contacts"),
    ("POST", "/contacts/abc/show"),
    ("PATCH", "/contacts/abc"),
    ("DELETE", "/contacts/abc"),
    ("POST", "/contacts/abc/store"),
    ("POST", "/contacts/abc/search/def"),
    ("PATCH", "/contacts/abc/update/def"),
    ("DELETE", "/contacts/abc/delete/def"),
    ("POST", "/contacts/abc/all"),
    ("POST", "/sms/send"),
    ("POST", "/sms/campaign"),
    ("GET", "/sms/abc"),
    ("GET", "/sms"),
    ("GET", "/campaign/abc/view"),
    ("GET", "/balance"),
    ("GET", "/me"),
]
SMS = {"sender_id": "Shop", "type": "plain", "message": "Hello"}


@pytest.fixture(params=["/api/v3", "/api/http"])
def api(request, sandbox, http):
    def call(method, path, **kwargs):
        return http.request(method, sandbox.url + request.param + path, headers=TEXTBOOST_AUTH, **kwargs)

    return call


@pytest.fixture
def group(api):
    return api("POST", "/contacts", json={"name": "Customers"}).json()["data"]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
@pytest.mark.parametrize("prefix", ["/api/v3", "/api/http"])
def test_every_endpoint_refuses_a_wrong_token_with_401(sandbox, http, prefix, method, path):
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        response = http.request(method, sandbox.url + prefix + path, headers=headers, json={})
        assert (response.status_code, response.json()) == (401, {"message": "Unauthenticated."})


def test_api_token_field_works_under_api_http_only(sandbox, http):
    good = http.get(f"{sandbox.url}/api/http/balance", params={"api_token": TEXTBOOST_TOKEN})
    assert good.status_code == 200 and good.json()["status"] == "success"
    posted = http.post(f"{sandbox.url}/api/http/contacts", json={"api_token": TEXTBOOST_TOKEN, "name": "G"})
    assert posted.status_code == 200
    assert http.get(f"{sandbox.url}/api/v3/balance", params={"api_token": TEXTBOOST_TOKEN}).status_code == 401


def test_send_to_one_recipient_answers_one_message_object(sandbox, api):
    response = api("POST", "/sms/send", json={**SMS, "recipient": NL})
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "success"
    data = body["data"]
    assert set(data) >= {
        "uid",
        "to",
        "from",
        "message",
        "status",
        "cost",
        "sms_count",
        "direction",
        "created_at",
    }
    assert (data["to"], data["from"], data["message"], data["status"], data["sms_count"]) == (
        NL,
        "Shop",
        "Hello",
        "Queued",
        1,
    )
    assert len(data["uid"]) == 13 and data["created_at"].endswith("Z")
    (stored,) = sandbox.messages("textboost")
    assert (stored["id"], stored["recipient"]) == (data["uid"], "+" + NL)


def test_send_to_several_recipients_answers_a_list(sandbox, api):
    data = api("POST", "/sms/send", json={**SMS, "recipient": f"{NL},+{US}"}).json()["data"]
    assert [item["to"] for item in data] == [NL, US]
    assert len(sandbox.messages("textboost")) == 2


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({**SMS, "recipient": f"{NL},5512"}, "The recipient 5512 is not a valid phone number."),
        (SMS, "The recipient field is required."),
        ({**SMS, "recipient": NL, "sender_id": None}, "The sender id field is required."),
        ({**SMS, "recipient": NL, "sender_id": "MuchTooLongName"}, None),
        ({**SMS, "recipient": NL, "type": "fax"}, "The selected type is invalid."),
        ({**SMS, "recipient": NL, "message": ""}, "The message field is required."),
        ({**SMS, "recipient": NL, "type": "voice", "language": "en-gb"}, "The selected gender is invalid."),
        ({**SMS, "recipient": NL, "type": "mms"}, "The media url field is required."),
        ({**SMS, "recipient": NL, "schedule_time": "2030-01-01T10:00"}, None),
        (
            {**SMS, "recipient": NL, "schedule_time": "2001-01-01 10:00"},
            "The schedule time must be a date after now.",
        ),
    ],
)
def test_send_validation_rejects_the_whole_request_with_422(sandbox, api, body, message):
    response = api("POST", "/sms/send", json={k: v for k, v in body.items() if v is not None})
    assert response.status_code == 422
    assert response.json()["status"] == "error"
    if message:
        assert response.json()["message"] == message
    assert sandbox.messages() == []


def test_voice_and_mms_sends_keep_their_extras(sandbox, api):
    api(
        "POST",
        "/sms/send",
        json={**SMS, "recipient": NL, "type": "voice", "language": "en-gb", "gender": "female"},
    )
    mms = {"recipient": US, "sender_id": "Shop", "type": "mms", "media_url": "https://example.com/a.png"}
    assert api("POST", "/sms/send", json=mms).status_code == 200
    voice, picture = sandbox.messages("textboost")
    assert (voice["type"], voice["extra"]) == ("voice", {"language": "en-gb", "gender": "female"})
    assert (picture["type"], picture["body"], picture["extra"]["media_url"]) == (
        "mms",
        "",
        "https://example.com/a.png",
    )


def test_a_scheduled_send_is_scheduled_until_its_time(sandbox, api):
    when = later(sandbox, "%Y-%m-%d %H:%M", hours=3)
    data = api("POST", "/sms/send", json={**SMS, "recipient": NL, "schedule_time": when}).json()["data"]
    assert (data["status"], data["schedule_time"]) == ("Scheduled", when)
    sandbox.advance(3 * 3600 + 60)
    assert api("GET", f"/sms/{data['uid']}").json()["data"]["status"] == "Delivered"


def test_show_one_message_and_404_for_an_unknown_uid(api):
    uid = api("POST", "/sms/send", json={**SMS, "recipient": NL_FAILED}).json()["data"]["uid"]
    shown = api("GET", f"/sms/{uid}")
    assert (shown.status_code, shown.json()["data"]["uid"], shown.json()["data"]["status"]) == (
        200,
        uid,
        "Queued",
    )
    missing = api("GET", "/sms/0000000000000")
    assert (missing.status_code, missing.json()["status"]) == (404, "error")


def test_message_list_uses_laravel_pagination(sandbox, api):
    for i in range(5):
        api("POST", "/sms/send", json={**SMS, "recipient": NL, "message": f"m{i}"})
    first = api("GET", "/sms", params={"per_page": 2}).json()["data"]
    assert {k: first[k] for k in ("current_page", "last_page", "per_page", "total", "from", "to")} == {
        "current_page": 1,
        "last_page": 3,
        "per_page": 2,
        "total": 5,
        "from": 1,
        "to": 2,
    }
    assert [m["message"] for m in first["data"]] == ["m0", "m1"]
    assert first["next_page_url"].startswith(sandbox.url) and "page=2" in first["next_page_url"]
    last = api("GET", "/sms", params={"per_page": 2, "page": 3}).json()["data"]
    assert ([m["message"] for m in last["data"]], last["next_page_url"]) == (["m4"], None)
    default = api("GET", "/sms").json()["data"]
    assert (default["per_page"], len(default["data"]), default["next_page_url"]) == (25, 5, None)
    assert api("GET", "/sms", params={"per_page": 0}).status_code == 422


def test_groups_create_list_show_rename_and_delete(api, group):
    assert set(group) >= {"uid", "name", "created_at"} and group["name"] == "Customers"
    uid = group["uid"]
    listed = api("GET", "/contacts").json()["data"]
    assert (listed["total"], listed["data"][0]["uid"]) == (1, uid)
    assert api("POST", f"/contacts/{uid}/show").json()["data"]["uid"] == uid
    assert api("PATCH", f"/contacts/{uid}", json={"name": "VIP"}).json()["data"]["name"] == "VIP"
    deleted = api("DELETE", f"/contacts/{uid}")
    assert (deleted.status_code, deleted.json()) == (200, {"status": "success", "data": None})
    for method, path in (
        ("POST", f"/contacts/{uid}/show"),
        ("PATCH", f"/contacts/{uid}"),
        ("DELETE", f"/contacts/{uid}"),
    ):
        response = api(method, path, json={"name": "x"})
        assert (response.status_code, response.json()["status"]) == (404, "error")
    missing_name = api("POST", "/contacts", json={})
    assert (missing_name.status_code, missing_name.json()["message"]) == (422, "The name field is required.")


def test_contacts_store_show_update_list_and_delete(sandbox, api, group):
    gid = group["uid"]
    stored = api("POST", f"/contacts/{gid}/store", json={"phone": NL, "first_name": "Ann"})
    assert stored.status_code == 200
    contact = stored.json()["data"]
    assert (contact["phone"], contact["first_name"], contact["group_id"]) == (NL, "Ann", gid)
    cid = contact["uid"]
    assert api("POST", f"/contacts/{gid}/search/{cid}").json()["data"]["uid"] == cid
    update = {"phone": US, "last_name": "Lee"}
    updated = api("PATCH", f"/contacts/{gid}/update/{cid}", json=update).json()["data"]
    assert (updated["phone"], updated["first_name"], updated["last_name"]) == (US, "Ann", "Lee")
    api("POST", f"/contacts/{gid}/store", json={"phone": NL})
    page = api("POST", f"/contacts/{gid}/all", json={"per_page": 1}).json()["data"]
    assert (page["total"], page["last_page"], page["data"][0]["uid"]) == (2, 2, cid)
    assert api("DELETE", f"/contacts/{gid}/delete/{cid}").json() == {"status": "success", "data": None}
    assert [c["phone"] for c in sandbox.contacts("textboost")] == ["+" + NL]


def test_contacts_store_and_update_accept_the_upper_case_field_names(sandbox, api, group):
    """Newer releases of the platform and the vendor's own examples send PHONE, FIRST_NAME, LAST_NAME."""
    gid = group["uid"]
    stored = api(
        "POST", f"/contacts/{gid}/store", json={"PHONE": NL, "FIRST_NAME": "Ann", "LAST_NAME": "Lee"}
    )
    assert stored.status_code == 200, stored.text
    contact = stored.json()["data"]
    assert (contact["phone"], contact["first_name"], contact["last_name"]) == (NL, "Ann", "Lee")
    cid = contact["uid"]
    updated = api("PATCH", f"/contacts/{gid}/update/{cid}", json={"PHONE": US, "FIRST_NAME": "Bo"})
    assert updated.status_code == 200, updated.text
    data = updated.json()["data"]
    assert (data["phone"], data["first_name"], data["last_name"]) == (US, "Bo", "Lee")
    # Both spellings at once: the lower-case one wins; a missing phone in either spelling is still 422.
    both = api("POST", f"/contacts/{gid}/store", json={"phone": NL, "PHONE": US, "FIRST_NAME": "Cy"}).json()
    assert (both["data"]["phone"], both["data"]["first_name"]) == (NL, "Cy")
    missing = api("POST", f"/contacts/{gid}/store", json={"FIRST_NAME": "Di"})
    assert (missing.status_code, missing.json()["message"]) == (422, "The phone field is required.")
    assert sorted(c["phone"] for c in sandbox.contacts("textboost")) == sorted(["+" + NL, "+" + US])


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/contacts/GID/store", {"phone": "5512"}, 422),
        ("POST", "/contacts/GID/store", {}, 422),
        ("POST", "/contacts/nope/store", {"phone": NL}, 404),
        ("POST", "/contacts/GID/search/nope", {}, 404),
        ("PATCH", "/contacts/GID/update/nope", {"phone": NL}, 404),
        ("DELETE", "/contacts/GID/delete/nope", {}, 404),
        ("POST", "/contacts/nope/all", {}, 404),
    ],
)
def test_contact_errors(api, group, method, path, body, status):
    response = api(method, path.replace("GID", group["uid"]), json=body)
    assert (response.status_code, response.json()["status"]) == (status, "error")


def test_campaign_sends_once_to_each_distinct_phone_of_its_groups(sandbox, api):
    gids = [api("POST", "/contacts", json={"name": n}).json()["data"]["uid"] for n in ("A", "B")]
    for gid, phone in ((gids[0], NL), (gids[0], US), (gids[1], NL)):
        api("POST", f"/contacts/{gid}/store", json={"phone": phone})
    data = api("POST", "/sms/campaign", json={**SMS, "contact_list_id": ",".join(gids)}).json()["data"]
    assert (data["recipients"], data["status"], data["contact_list_id"]) == (2, "Queued", gids)
    messages = sandbox.messages("textboost")
    assert sorted(m["recipient"] for m in messages) == sorted(["+" + NL, "+" + US])
    assert {m["extra"]["campaign_uid"] for m in messages} == {data["uid"]}
    missing = api("POST", "/sms/campaign", json={**SMS, "contact_list_id": "nope"})
    assert (missing.status_code, missing.json()["status"]) == (404, "error")
    assert api("POST", "/sms/campaign", json=SMS).status_code == 422


# The platform's display dates, e.g. "30th Aug 25, 8:14 AM" (as a reseller's public API docs show).
DISPLAY_DATE = re.compile(r"\d{1,2}(st|nd|rd|th) [A-Z][a-z]{2} \d{2}, \d{1,2}:\d{2} (AM|PM)")
STATS = {
    "enroute_count", "delivered_count", "expired_count", "undelivered_count",
    "rejected_count", "accepted_count", "skipped_count", "failed_count",
}  # fmt: skip


def test_view_campaign_shows_its_status_and_counters_and_404_for_an_unknown_uid(sandbox, api):
    gid = api("POST", "/contacts", json={"name": "A"}).json()["data"]["uid"]
    for phone in (NL, US, NL_UNDELIVERED, NL_FAILED):
        api("POST", f"/contacts/{gid}/store", json={"phone": phone})
    campaign = api("POST", "/sms/campaign", json={**SMS, "contact_list_id": gid}).json()["data"]
    view = api("GET", f"/campaign/{campaign['uid']}/view")
    assert view.status_code == 200, view.text
    assert view.json()["status"] == "success"
    data = view.json()["data"]
    assert set(data) == {
        "id",
        "name",
        "message",
        "status",
        "type",
        "created_at",
        "start_at",
        "delivery_at",
        "stats",
    }
    assert (data["id"], data["message"], data["type"], data["status"]) == (
        campaign["uid"],
        "Hello",
        "plain",
        "processing",
    )
    assert DISPLAY_DATE.fullmatch(data["created_at"]) and DISPLAY_DATE.fullmatch(data["start_at"])
    assert data["delivery_at"] is None and data["stats"] == dict.fromkeys(STATS, 0)  # all still queued
    sandbox.advance(3600)
    data = api("GET", f"/campaign/{campaign['uid']}/view").json()["data"]
    assert data["status"] == "done" and DISPLAY_DATE.fullmatch(data["delivery_at"])
    assert data["stats"] == {
        **dict.fromkeys(STATS, 0), "delivered_count": 2, "undelivered_count": 1, "failed_count": 1
    }  # fmt: skip
    missing = api("GET", "/campaign/nope/view")
    assert (missing.status_code, missing.json()) == (
        404,
        {"status": "error", "message": "Campaign nope not found."},
    )
    sent = api("POST", "/sms/send", json={**SMS, "recipient": NL}).json()["data"]["uid"]
    assert api("GET", f"/campaign/{sent}/view").status_code == 404  # a message uid is no campaign


def test_view_campaign_of_a_scheduled_campaign_is_scheduled_until_its_time(sandbox, api):
    gid = api("POST", "/contacts", json={"name": "A"}).json()["data"]["uid"]
    api("POST", f"/contacts/{gid}/store", json={"phone": NL})
    when = later(sandbox, "%Y-%m-%d %H:%M", hours=3)
    body = {**SMS, "contact_list_id": gid, "schedule_time": when}
    uid = api("POST", "/sms/campaign", json=body).json()["data"]["uid"]
    assert api("GET", f"/campaign/{uid}/view").json()["data"]["status"] == "scheduled"
    sandbox.advance(4 * 3600)
    data = api("GET", f"/campaign/{uid}/view").json()["data"]
    assert (data["status"], data["stats"]["delivered_count"]) == ("done", 1)


def test_balance_falls_per_segment_and_me_shows_the_profile(api):
    before = int(api("GET", "/balance").json()["data"]["remaining_balance"])
    api("POST", "/sms/send", json={**SMS, "recipient": NL, "message": "ж" * 71})  # UCS-2: 2 segments
    balance = api("GET", "/balance").json()
    assert balance["status"] == "success"
    assert int(balance["data"]["remaining_balance"]) == before - 2 and balance["data"]["expired_on"]
    me = api("GET", "/me").json()["data"]
    assert set(me) >= {"first_name", "last_name", "email"}


def test_sends_beyond_the_balance_are_refused_before_anything_is_stored():
    import requests

    with run_sandbox(balance=2) as small:
        textboost = requests.post(
            f"{small.url}/api/v3/sms/send",
            headers=TEXTBOOST_AUTH,
            json={**SMS, "recipient": f"{NL},{US},{NL}"},
        )
        assert (textboost.status_code, textboost.json()["status"]) == (403, "error")
        smstools = requests.post(
            f"{small.url}/v1/message/send",
            headers={
                "X-Client-Id": "sandbox-client-id",
                "X-Client-Secret": "sandbox-client-secret-0123456789",
            },
            json={"message": "x" * 161, "sender": "Shop", "to": [NL, US]},
        )
        assert (smstools.status_code, smstools.json()["error"]) == (400, 108)
        assert small.messages() == []


def test_unknown_paths_answer_in_textboost_style(api):
    response = api("GET", "/nothing")
    assert (response.status_code, response.json()) == (404, {"status": "error", "message": "Not found"})
