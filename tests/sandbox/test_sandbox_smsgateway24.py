"""SmsGateway24 API of the sandbox, through plain HTTP form posts (and GET queries)."""

from __future__ import annotations

import json

import pytest

from .helpers import NL, NL_UNDELIVERED, SG24_LOGIN, US, later

TOKEN_ENDPOINTS = [
    "addsms",
    "getallsms",
    "savetag",
    "savecontact",
    "savepaket",
    "getalldevices",
    "getsmsstatus",
    "getdevicestatus",
]
TOKEN_ERROR = {"error": 1, "message": "Token is wrong or expired"}


@pytest.fixture
def api(sandbox, http):
    def call(endpoint, method="POST", **fields):
        url = f"{sandbox.url}/getdata/{endpoint}"
        if method == "GET":
            return http.get(url, params=fields)
        return http.post(url, data=fields)

    return call


@pytest.fixture
def send(api, sg24_token):
    def send_one(sendto="+" + NL, **fields):
        fields = {"token": sg24_token, "sendto": sendto, "body": "Hello", "device_id": 1001, **fields}
        return api("addsms", **fields)

    return send_one


def test_gettoken_gives_a_token_for_the_right_login_only(api):
    good = api("gettoken", **SG24_LOGIN)
    assert good.status_code == 200
    assert good.json()["error"] == 0 and len(good.json()["token"]) == 32
    bad = api("gettoken", email=SG24_LOGIN["email"], **{"pass": "wrong"})
    assert (bad.status_code, bad.json()) == (200, {"error": 1, "message": "Login or password incorrect"})
    assert api("gettoken", email=SG24_LOGIN["email"]).json() == {
        "error": 1,
        "message": "Field pass is required",
    }


@pytest.mark.parametrize("endpoint", [*TOKEN_ENDPOINTS, "addalotofsms"])
def test_every_token_endpoint_refuses_a_wrong_token_with_http_200(api, endpoint):
    fields = (
        {"datajson": json.dumps({"token": "nope", "smsdata": [{}]})} if endpoint == "addalotofsms" else {}
    )
    response = api(endpoint, token="nope", **fields)
    assert (response.status_code, response.json()) == (200, TOKEN_ERROR)


def test_tokens_expire_after_the_ttl_of_sandbox_time_and_on_demand(sandbox, api, sg24_token):
    assert api("getalldevices", token=sg24_token).json()["error"] == 0
    sandbox.advance(3599)
    assert api("getalldevices", token=sg24_token).json()["error"] == 0
    sandbox.advance(2)
    assert api("getalldevices", token=sg24_token).json() == TOKEN_ERROR
    fresh = api("gettoken", **SG24_LOGIN).json()["token"]
    sandbox.expire_tokens()
    assert api("getalldevices", token=fresh).json() == TOKEN_ERROR


def test_addsms_stores_the_message_and_answers_its_id(sandbox, send):
    response = send(customerid="0042", urgent=1, sim=1)
    assert response.status_code == 200
    body = response.json()
    assert body == {"error": 0, "sms_id": body["sms_id"], "message": "Sms has been saved successfully"}
    (stored,) = sandbox.messages("smsgateway24")
    assert (stored["id"], stored["recipient"], stored["customerid"], stored["status"]) == (
        body["sms_id"],
        "+" + NL,
        "42",
        1,
    )
    assert stored["extra"] == {"device_id": 1001, "sim": 1, "urgent": 1}


def test_addsms_accepts_get_queries_and_a_trailing_slash(sandbox, api, sg24_token):
    fields = {"token": sg24_token, "sendto": "+" + NL, "body": "via GET", "device_id": 1002}
    assert api("addsms/", method="GET", **fields).json()["error"] == 0
    assert api("addsms/", **fields).json()["error"] == 0
    assert [m["extra"]["device_id"] for m in sandbox.messages()] == [1002, 1002]
    assert sandbox.request_count("smsgateway24", "/getdata/addsms") == 2


def test_addsms_with_several_numbers_stores_the_valid_ones(sandbox, send):
    body = send(sendto=f"+{NL}, 31612345679, +{US}").json()
    assert body["error"] == 0
    assert body["sms_ids"][1] is None and body["sms_id"] == body["sms_ids"][0]
    assert body["errors"] == [
        {"index": 1, "sendto": "31612345679", "message": "Phone number 31612345679 is not valid"}
    ]
    assert [m["recipient"] for m in sandbox.messages()] == ["+" + NL, "+" + US]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"sendto": NL}, f"Phone number {NL} is not valid"),  # no "+": refused
        ({"sendto": "+3161"}, "Phone number +3161 is not valid"),
        ({"sendto": ""}, "Field sendto is required"),
        ({"body": ""}, "Field body is required"),
        ({"device_id": ""}, "Field device_id is required"),
        ({"device_id": 7}, "Device not found"),
        ({"sim": 9}, "Field sim must be 0 or 1 (SIM slots), 2 or 3 (WhatsApp), 4 or 5 (RCS)"),
        ({"timetosend": "next week"}, "Field timetosend must be YYYY-MM-DD or YYYY-MM-DD HH:MM:SS"),
        ({"customerid": "abc"}, "Field customerid must be an integer of at most 20 digits"),
        ({"customerid": "9" * 5000}, "Field customerid must be an integer of at most 20 digits"),
    ],
)
def test_addsms_validation_errors(sandbox, send, fields, message):
    assert send(**fields).json() == {"error": 1, "message": message}
    assert sandbox.messages() == []


def test_smstosend_authenticates_with_email_and_pass(sandbox, api):
    fields = {"sendto": "+" + NL, "body": "Hi", "device_id": 1001, **SG24_LOGIN}
    assert api("smstosend", **fields).json()["error"] == 0
    wrong = api("smstosend", **{**fields, "pass": "nope"}).json()
    assert wrong == {"error": 1, "message": "Login or password incorrect"}
    assert len(sandbox.messages()) == 1


def test_addalotofsms_aligns_ids_with_smsdata_and_reports_refused_rows(sandbox, api, sg24_token):
    rows = [
        {"sendto": "+" + NL, "body": "one", "device_id": 1001, "sim": 0, "customerid": 11},
        {"sendto": NL, "body": "two", "device_id": 1001},
        {"sendto": "+" + US, "body": "three", "device_id": 5},
        {"sendto": "+" + US, "body": "four", "device_id": 1002, "sim": 1, "urgent": 1},
    ]
    response = api("addalotofsms", datajson=json.dumps({"token": sg24_token, "smsdata": rows}))
    body = response.json()
    assert (response.status_code, body["error"]) == (200, 0)
    assert [sms_id is None for sms_id in body["sms_ids"]] == [False, True, True, False]
    assert body["errors"] == [
        {"index": 1, "sendto": NL, "message": f"Phone number {NL} is not valid"},
        {"index": 2, "sendto": "+" + US, "message": "Device not found"},
    ]
    stored = {m["id"]: m for m in sandbox.messages()}
    assert stored[body["sms_ids"][0]]["customerid"] == "11"
    assert stored[body["sms_ids"][3]]["extra"] == {"device_id": 1002, "sim": 1, "urgent": 1}


@pytest.mark.parametrize(
    ("datajson", "message"),
    [
        (None, "Field datajson is required"),
        ("{not json", "Field datajson is not valid JSON"),
        ("[]", "Field datajson must be a JSON object"),
        ('{"token": "TOKEN", "smsdata": []}', "Field smsdata is required"),
    ],
)
def test_addalotofsms_errors(api, sg24_token, datajson, message):
    fields = {} if datajson is None else {"datajson": datajson.replace("TOKEN", sg24_token)}
    assert api("addalotofsms", token=sg24_token, **fields).json() == {"error": 1, "message": message}


def test_getallsms_answers_an_object_keyed_by_id(sandbox, send, api, sg24_token):
    sms_id = send(customerid=7).json()["sms_id"]
    body = api("getallsms", token=sg24_token).json()
    assert (body["error"], body["count"], list(body["smss"])) == (0, 1, [str(sms_id)])
    item = body["smss"][str(sms_id)]
    assert set(item) >= {
        "id", "sendto", "body", "customerid", "status", "statustitle", "deviceid", "urgent", "created",
        "senttime", "timetosend", "paketid", "pakettitle", "paketbody",
    }  # fmt: skip
    assert (item["id"], item["sendto"], item["customerid"], item["status"], item["statustitle"]) == (
        sms_id,
        "+" + NL,
        7,
        1,
        "New",  # the real service's title for 1
    )
    assert item["created"]["timezone_type"] == 3 and item["created"]["timezone"] == "UTC"
    sandbox.advance(10)
    item = api("getallsms", token=sg24_token).json()["smss"][str(sms_id)]
    assert (item["status"], item["statustitle"]) == (7, "delivered") and item["senttime"]


def test_getallsms_filters(sandbox, send, api, sg24_token):
    first = send(customerid=1).json()["sms_id"]
    second = send(sendto="+" + US, customerid=2, sim=1, device_id=1002).json()["sms_id"]
    third = send(sendto="+" + NL_UNDELIVERED, customerid=2).json()["sms_id"]
    sandbox.advance(10)
    fourth = send(customerid=3).json()["sms_id"]  # created 10 sandbox seconds later, still status 1

    def ids(**filters):
        return [int(key) for key in api("getallsms", token=sg24_token, **filters).json()["smss"]]

    assert ids() == [first, second, third, fourth]
    assert ids(orderbydesc=1) == [fourth, third, second, first]
    assert ids(device_id=1002) == [second]
    assert ids(sim=1) == [second]
    assert ids(customerid=2) == [second, third]
    assert ids(status=7) == [first, second]
    assert ids(status=8) == [third]
    assert ids(status=1) == [fourth]
    assert ids(phone=US) == [second]
    today = later(sandbox, "%Y-%m-%d")
    assert ids(begindate=today, enddate=today) == [first, second, third, fourth]
    assert ids(begindate=later(sandbox, "%Y-%m-%d %H:%M:%S", seconds=-5)) == [fourth]
    assert ids(enddate=later(sandbox, "%Y-%m-%d %H:%M:%S", seconds=-5)) == [first, second, third]
    assert api("getallsms", token=sg24_token, onlycount=1, customerid=2).json() == {
        "error": 0,
        "message": "OK",
        "count": 2,
    }
    tokyo = api("getallsms", token=sg24_token, timezone="Asia/Tokyo").json()["smss"][str(first)]
    assert tokyo["created"]["timezone"] == "Asia/Tokyo"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"timezone": "Mars/Olympus"}, "Unknown timezone"),
        ({"status": "delivered"}, "Field status must be an integer"),
        ({"begindate": "01.02.2024"}, "Field begindate must be YYYY-MM-DD or YYYY-MM-DD HH:MM:SS"),
    ],
)
def test_getallsms_refuses_bad_filters(api, sg24_token, fields, message):
    assert api("getallsms", token=sg24_token, **fields).json() == {"error": 1, "message": message}


def test_getsmsstatus(sandbox, send, api, sg24_token):
    sms_id = send().json()["sms_id"]
    assert api("getsmsstatus", token=sg24_token, sms_id=sms_id).json() == {
        "error": 0,
        "sms_id": sms_id,
        "status": 1,
        "status_description": "New",
        "message": "OK",
    }
    assert api("getsmsstatus", token=sg24_token, sms_id=1).json() == {"error": 1, "message": "Sms not found"}


def test_savetag_and_savecontact_with_ctag_id_or_tag_id(sandbox, api, sg24_token):
    response = api("savetag", token=sg24_token, title="Employees")
    tag_id = response.json()["tag_id"]
    assert response.json() == {"error": 0, "tag_id": tag_id, "message": "OK"}
    assert api("savetag", token=sg24_token).json() == {"error": 1, "message": "Field title is required"}
    first = api(
        "savecontact", token=sg24_token, phone="+" + NL, ctag_id=tag_id, fullname="Ann de Vries"
    ).json()
    second = api("savecontact", token=sg24_token, phone="+" + US, tag_id=tag_id, fullname="").json()
    assert first["error"] == second["error"] == 0 and first["message"] == "ok"
    contacts = sandbox.contacts("smsgateway24")
    assert [(c["id"], c["list_id"], c["phone"]) for c in contacts] == [
        (first["contact_id"], tag_id, "+" + NL),
        (second["contact_id"], tag_id, "+" + US),
    ]
    assert contacts[0]["fields"] == {"fullname": "Ann de Vries"}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"phone": "+" + NL, "ctag_id": 1, "fullname": "A"}, "Tag not found"),
        ({"phone": "+" + NL, "fullname": "A"}, "Field ctag_id is required"),
        ({"phone": "+" + NL, "ctag_id": "TAG"}, "Field fullname is required"),
        ({"phone": NL, "ctag_id": "TAG", "fullname": "A"}, f"Phone number {NL} is not valid"),
    ],
)
def test_savecontact_errors(api, sg24_token, fields, message):
    tag_id = api("savetag", token=sg24_token, title="T").json()["tag_id"]
    fields = {k: (tag_id if v == "TAG" else v) for k, v in fields.items()}
    assert api("savecontact", token=sg24_token, **fields).json() == {"error": 1, "message": message}


def test_savepaket_sends_to_each_distinct_phone_of_its_tags_at_its_time(sandbox, api, sg24_token):
    tags = [api("savetag", token=sg24_token, title=t).json()["tag_id"] for t in ("A", "B")]
    for tag_id, phone in ((tags[0], NL), (tags[0], US), (tags[1], NL)):
        api("savecontact", token=sg24_token, phone="+" + phone, ctag_id=tag_id, fullname="x")
    when = later(sandbox, "%d.%m.%Y %H:%M:%S", hours=1)
    fields = {"title": "Sale", "device_id": 1001, "body": "50% off", "sim": 0, "time_to_send": when}
    response = api("savepaket", token=sg24_token, tags=f"{tags[0]},{tags[1]}", **fields).json()
    assert response == {"error": 0, "paket_id": response["paket_id"], "message": "OK"}
    messages = sandbox.messages("smsgateway24")
    assert sorted(m["recipient"] for m in messages) == sorted(["+" + NL, "+" + US])
    assert {(m["status"], m["normalized_status"]) for m in messages} == {(1, "scheduled")}
    item = next(iter(api("getallsms", token=sg24_token).json()["smss"].values()))
    assert (item["paketid"], item["pakettitle"], item["paketbody"]) == (
        response["paket_id"],
        "Sale",
        "50% off",
    )
    assert api("savepaket", token=sg24_token, tags="999", **fields).json() == {
        "error": 1,
        "message": "Tag 999 not found",
    }


def test_getalldevices_lists_the_two_sandbox_phones(api, sg24_token):
    body = api("getalldevices", token=sg24_token).json()
    assert (body["error"], body["count"], sorted(body["device"])) == (0, 2, ["1001", "1002"])
    device = body["device"]["1001"]
    assert set(device) >= {
        "id",
        "title",
        "imei",
        "created",
        "lastseen",
        "serialnumber",
        "siminfo",
        "appversion",
    }
    assert {"delaybetweeneachsms", "delaybetweenrequest", "subscription"} <= set(device)


def test_getdevicestatus(api, sg24_token):
    body = api("getdevicestatus", token=sg24_token, device_id=1002).json()
    assert (body["error"], body["device_id"], body["title"]) == (0, 1002, "Sandbox phone B")
    assert set(body["lastseen"]) == {"date", "timezone_type", "timezone"}
    assert api("getdevicestatus", token=sg24_token, device_id=1).json() == {
        "error": 1,
        "message": "Device not found",
    }


def test_an_unknown_method_is_404(api):
    response = api("sendfax")
    assert (response.status_code, response.json()) == (404, {"error": 1, "message": "Unknown method"})
