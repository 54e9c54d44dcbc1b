"""Replies: simulated by number (who, what, when), injected through ``POST /_sandbox/replies``, listed
by each gateway's own inbound endpoint, kept in the state file.

The ``sandbox`` fixture of this folder has a frozen clock (delivery in 2 s; replies within the
default 600 s of delivery): only ``advance()`` moves time.
"""

from __future__ import annotations

from collections import Counter

import pytest
import requests

from airflow_provider_sms.sandbox import replies
from airflow_provider_sms.sandbox.config import SandboxConfig
from airflow_provider_sms.sandbox.testing import SandboxServer, run_sandbox

from .helpers import SG24_LOGIN, SMSTOOLS_AUTH, TEXTBOOST_AUTH

RATE = SandboxConfig().reply_rate
DELIVERY, REPLY_SECONDS = 2, SandboxConfig().reply_seconds
ALL_IN = DELIVERY + REPLY_SECONDS  # by then every simulated reply has arrived


def numbers(count: int, start: int = 0) -> list[str]:
    """Valid Dutch mobile numbers (E.164) that are delivered (none ends in 13 or 66)."""
    found = []
    for n in range(start, start + 2 * count):
        number = f"+3161{n:07d}"
        if number[-2:] not in ("13", "66"):
            found.append(number)
        if len(found) == count:
            return found
    raise AssertionError("not enough numbers")


def replying(kind: str, count: int = 1, rate: float = RATE) -> list[str]:
    """Numbers whose simulated reply is of ``kind`` (stop or text) at ``rate``."""
    found = [n for n in numbers(4000) if (r := replies.simulated_reply(n, rate)) and r.kind == kind]
    return found[:count]


def silent(count: int = 1) -> list[str]:
    return [n for n in numbers(400) if replies.simulated_reply(n, RATE) is None][:count]


def smstools_send(sandbox: SandboxServer, to: list[str], **fields) -> requests.Response:
    body = {"message": "Sale today", "sender": "Shop", "to": [n.lstrip("+") for n in to], **fields}
    return requests.post(f"{sandbox.url}/v1/message/send", json=body, headers=SMSTOOLS_AUTH)


def smstools_inbox(sandbox: SandboxServer, **params) -> dict:
    return requests.get(f"{sandbox.url}/v1/message/inbox", headers=SMSTOOLS_AUTH, params=params).json()


def sg24_token(sandbox: SandboxServer) -> str:
    return requests.post(f"{sandbox.url}/getdata/gettoken", data=SG24_LOGIN).json()["token"]


def getallsms(sandbox: SandboxServer, **fields) -> dict:
    return requests.post(
        f"{sandbox.url}/getdata/getallsms", data={"token": sg24_token(sandbox), **fields}
    ).json()


def textboost_list(sandbox: SandboxServer, **params) -> dict:
    params = {"per_page": 1000, **params}
    return requests.get(f"{sandbox.url}/api/v3/sms", headers=TEXTBOOST_AUTH, params=params).json()["data"]


# ---------------------------------------------------------------------------------------------------
# The simulation, as a function of the number


def test_whether_and_what_a_number_replies_depends_only_on_the_number():
    for number in numbers(300):
        assert replies.simulated_reply(number, RATE) == replies.simulated_reply(number, RATE)
    # a number that replies at a low rate also replies at a higher one, with the same words
    low = {n: replies.simulated_reply(n, 0.05) for n in numbers(1000)}
    high = {n: replies.simulated_reply(n, 0.10) for n in numbers(1000)}
    assert {n for n, r in low.items() if r} < {n for n, r in high.items() if r}
    assert all(high[n] == r for n, r in low.items() if r)
    assert not any(replies.simulated_reply(n, 0) for n in numbers(500))
    assert all(replies.simulated_reply(n, 1) for n in numbers(500))


def test_the_documented_share_replies_and_a_documented_share_of_them_stop():
    simulated = [replies.simulated_reply(n, RATE) for n in numbers(500)]
    repliers = [r for r in simulated if r]
    assert 0.04 * 500 <= len(repliers) <= 0.12 * 500  # 8% expected: 40 ± 6
    everyone = [replies.simulated_reply(n, 1) for n in numbers(2000)]
    stops = [r for r in everyone if r.kind == replies.STOP]
    assert 0.35 <= len(stops) / len(everyone) <= 0.45  # 40% expected
    assert all(replies.MIN_DELAY <= r.delay <= 1 for r in everyone)
    assert max(r.delay for r in everyone) > 0.95 and min(r.delay for r in everyone) < 0.15


def test_stop_replies_come_in_seven_languages_and_many_spellings():
    everyone = [replies.simulated_reply(n, 1) for n in numbers(3000)]
    stops = [r for r in everyone if r.kind == replies.STOP]
    texts = [r for r in everyone if r.kind == replies.TEXT]
    assert set(Counter(r.language for r in stops)) == {"en", "de", "fr", "es", "nl", "it", "pt"}
    assert set(Counter(r.language for r in texts)) == set(replies.LANGUAGES)
    spellings = {r.text for r in stops}
    assert {"STOP", "Stopp", "ARRÊT", "baja.", "afmelden!", "CANCELLA", "PARAR"} <= spellings
    assert any(s != s.upper() for s in spellings) and any(s.strip() != s for s in spellings)
    # the sandbox's own keyword rule reads every stop spelling as stop, and no free text as either
    assert all(replies.keyword(r.text) == replies.STOP for r in stops)
    assert not any(replies.keyword(r.text) for r in texts)


@pytest.mark.parametrize(
    ("text", "word"),
    [
        ("  stop!! ", "stop"),
        ("Arrêt", "stop"),
        ("¡BAJA!", "stop"),
        ("unstop", "start"),
        ("START.", "start"),
        ("Stop please", None),  # the sandbox's rule is the whole reply: a person reads this one
        ("Don't stop", None),
        ("", None),
    ],
)
def test_the_sandbox_keyword_rule(text, word):
    assert replies.keyword(text) == word


# ---------------------------------------------------------------------------------------------------
# Simulated replies through the gateways


def test_replies_arrive_after_delivery_within_the_reply_seconds_once_per_number(sandbox):
    audience = numbers(300)
    assert smstools_send(sandbox, audience).status_code == 200
    expected = {n: replies.simulated_reply(n, RATE) for n in audience}
    expected = {n: r for n, r in expected.items() if r}
    assert expected  # the audience is large enough to hold repliers

    assert smstools_inbox(sandbox)["total"] == 0
    sandbox.advance(DELIVERY + replies.MIN_DELAY * REPLY_SECONDS - 1)
    assert smstools_inbox(sandbox)["total"] == 0  # none before a tenth of the reply seconds
    sandbox.advance(REPLY_SECONDS)
    listed = smstools_inbox(sandbox, limit=2000)["messages"]
    assert {"+" + m["sender"]: m["message"] for m in listed} == {n: r.text for n, r in expected.items()}
    assert {m["receiver"] for m in listed} == {"3197010240000"}  # "Shop" cannot be answered: our number
    assert [m["date"] for m in listed] == sorted(m["date"] for m in listed)  # oldest first

    assert smstools_send(sandbox, audience, message="Second sale").status_code == 200
    sandbox.advance(ALL_IN)
    assert smstools_inbox(sandbox)["total"] == len(expected)  # one reply per number and account


def test_a_reply_goes_to_the_number_that_sent_and_comes_when_its_number_says(sandbox):
    (number,) = replying(replies.STOP)
    reply = replies.simulated_reply(number, RATE)
    smstools_send(sandbox, [number], sender="3197010240001")
    (stored,) = sandbox.replies("smstools")
    assert (stored["from"], stored["to"], stored["text"], stored["arrived"]) == (
        number,
        "3197010240001",
        reply.text,
        False,
    )
    sandbox.advance(DELIVERY + reply.delay * REPLY_SECONDS - 0.5)
    assert smstools_inbox(sandbox)["total"] == 0
    sandbox.advance(1)
    (listed,) = smstools_inbox(sandbox)["messages"]
    assert (listed["sender"], listed["receiver"], listed["message"]) == (
        number[1:],
        "3197010240001",
        reply.text,
    )


def test_who_does_not_reply(sandbox):
    sandbox.set_reply_simulation(rate=1)  # everyone who can, replies
    delivered, undelivered, failed = numbers(1)[0], "+31612345613", "+31612345666"
    voice, test_mode = numbers(2, 100)  # a voice message and a test send: nothing to answer
    smstools_send(sandbox, [delivered, undelivered, failed])
    smstools_send(sandbox, [test_mode], test=True)
    requests.post(
        f"{sandbox.url}/v1/voice/send", json={"to": voice[1:], "message": "Your code"}, headers=SMSTOOLS_AUTH
    )
    scheduled = numbers(1, 200)[0]
    answer = smstools_send(sandbox, [scheduled], date="2099-01-01 10:00").json()
    outbox_id = answer["messageids"][0]
    assert {r["from"] for r in sandbox.replies()} == {delivered, scheduled}
    requests.delete(f"{sandbox.url}/v1/outbox/{outbox_id}", headers=SMSTOOLS_AUTH)  # cancelled: no answer
    assert {r["from"] for r in sandbox.replies()} == {delivered}


def test_replies_show_on_all_three_gateways(sandbox):
    sandbox.set_reply_simulation(rate=1)
    audience = numbers(3)
    token = sg24_token(sandbox)
    sent = requests.post(
        f"{sandbox.url}/getdata/addsms",
        data={"token": token, "sendto": ",".join(audience), "body": "Hi", "device_id": 1002, "sim": 1},
    ).json()
    tb = requests.post(
        f"{sandbox.url}/api/v3/sms/send",
        json={
            "recipient": ",".join(n[1:] for n in audience),
            "sender_id": "Shop",
            "type": "plain",
            "message": "Hi",
        },
        headers=TEXTBOOST_AUTH,
    ).json()["data"]
    sandbox.advance(ALL_IN)
    texts = {n: replies.simulated_reply(n, 1).text for n in audience}

    incoming = getallsms(sandbox, status=5)
    assert incoming["count"] == 3
    rows = list(incoming["smss"].values())
    assert {r["sendto"]: r["body"] for r in rows} == texts
    assert {(r["status"], r["statustitle"], r["deviceid"], r["sim"], r["customerid"]) for r in rows} == {
        (5, "incoming", 1002, 1, None)
    }
    assert not set(incoming["smss"]) & {str(i) for i in sent["sms_ids"]}
    everything = getallsms(sandbox)
    assert everything["count"] == 6
    assert [r["created"]["date"] for r in everything["smss"].values()] == sorted(
        r["created"]["date"] for r in everything["smss"].values()
    )
    assert getallsms(sandbox, status=5, device_id=1001)["count"] == 0
    assert getallsms(sandbox, status=5, phone=audience[0][1:])["count"] == 1
    assert getallsms(sandbox, status=7)["count"] == 3
    assert getallsms(sandbox, status=5, onlycount=1) == {"error": 0, "message": "OK", "count": 3}
    some_id = rows[0]["id"]
    status = requests.post(
        f"{sandbox.url}/getdata/getsmsstatus", data={"token": token, "sms_id": some_id}
    ).json()
    assert (status["status"], status["status_description"]) == (5, "Incoming")

    listing = textboost_list(sandbox)
    assert listing["total"] == 6
    inbound = [m for m in listing["data"] if m["direction"] == "incoming"]
    assert {"+" + m["from"]: m["message"] for m in inbound} == texts
    assert {m["to"] for m in inbound} == {"3197010250000"}
    assert not {m["uid"] for m in inbound} & {m["uid"] for m in tb}
    assert [m["created_at"] for m in listing["data"]] == sorted(m["created_at"] for m in listing["data"])
    one = requests.get(f"{sandbox.url}/api/v3/sms/{inbound[0]['uid']}", headers=TEXTBOOST_AUTH).json()["data"]
    assert one == inbound[0]
    paged = [m["uid"] for page in (1, 2, 3) for m in textboost_list(sandbox, page=page, per_page=2)["data"]]
    assert paged == [m["uid"] for m in listing["data"]]


def test_stop_replies_fill_the_smstools_opt_out_list_and_start_takes_a_number_off(sandbox):
    stoppers = replying(replies.STOP, 2)
    talker = replying(replies.TEXT)
    smstools_send(sandbox, [*stoppers, *talker])
    group = requests.post(f"{sandbox.url}/v1/groups", json={"name": "G"}, headers=SMSTOOLS_AUTH).json()["ID"][
        0
    ]
    unsubscribed = {"phone": "31612399901", "groupid": group, "unsubscribed": 1}
    requests.post(f"{sandbox.url}/v1/contact", json=unsubscribed, headers=SMSTOOLS_AUTH)

    def opted_out() -> list[str]:
        listed = requests.get(f"{sandbox.url}/v1/optouts/list", headers=SMSTOOLS_AUTH).json()["optouts"]
        return ["+" + row["phone"] for row in listed]

    assert opted_out() == ["+31612399901"]
    sandbox.advance(ALL_IN)
    assert set(opted_out()) == {"+31612399901", *stoppers}
    sandbox.inject_reply("smstools", stoppers[0], "START")
    sandbox.inject_reply("smstools", "+31612399902", " Stopp! ")
    sandbox.inject_reply("textboost", "+31612399903", "STOP")  # another account's list
    assert set(opted_out()) == {"+31612399901", stoppers[1], "+31612399902"}


def test_the_reply_simulation_can_be_turned_off_and_reset_restores_it(sandbox):
    assert requests.get(f"{sandbox.url}/_sandbox/reply-simulation").json() == {
        "rate": RATE,
        "seconds": REPLY_SECONDS,
    }
    assert sandbox.set_reply_simulation(rate=0) == {"rate": 0, "seconds": REPLY_SECONDS}
    smstools_send(sandbox, replying(replies.STOP, 5))
    sandbox.advance(ALL_IN)
    assert sandbox.replies() == [] and smstools_inbox(sandbox)["total"] == 0
    assert sandbox.set_reply_simulation(rate=1, seconds=10) == {"rate": 1, "seconds": 10}
    smstools_send(sandbox, numbers(1, 500))
    sandbox.advance(DELIVERY + 10)
    assert smstools_inbox(sandbox)["total"] == 1
    assert sandbox.stats()["replies"]["by_gateway"]["smstools"] == {"arrived": 1, "pending": 0}
    for bad in ({"rate": 1.5}, {"rate": -0.1}, {"seconds": -1}, {"rate": "lots"}, {"speed": 2}, [0.1]):
        answer = requests.post(f"{sandbox.url}/_sandbox/reply-simulation", json=bad)
        assert answer.status_code == 400, bad
    sandbox.reset()
    assert requests.get(f"{sandbox.url}/_sandbox/reply-simulation").json() == {
        "rate": RATE,
        "seconds": REPLY_SECONDS,
    }


def test_two_sandboxes_simulate_the_same_replies():
    audience = numbers(200)
    seen = []
    for _ in range(2):
        with run_sandbox(delivery_seconds=DELIVERY, frozen_clock=True) as server:
            smstools_send(server, audience)
            seen.append([(r["from"], r["text"]) for r in sorted(server.replies(), key=lambda r: r["from"])])
    assert seen[0] == seen[1] and seen[0]


# ---------------------------------------------------------------------------------------------------
# Injection


def test_an_injected_reply_is_listed_by_its_gateway_with_the_id_it_was_given(sandbox):
    smstools = sandbox.inject_reply("smstools", "+4915112345678", "Who is this?")
    sg24 = sandbox.inject_reply("smsgateway24", "4915112345678", "STOP", to=1002)
    textboost = sandbox.inject_reply("textboost", "+4915112345678", "Baja", to="ACME")
    assert (smstools["origin"], smstools["arrived"], smstools["keyword"]) == ("injected", True, None)
    assert (smstools["from"], smstools["to"]) == ("+4915112345678", "+3197010240000")
    assert (sg24["to"], sg24["keyword"]) == ("1002", "stop")

    (inbox_row,) = smstools_inbox(sandbox)["messages"]
    assert (inbox_row["ID"], inbox_row["sender"], inbox_row["message"]) == (
        smstools["id"],
        "4915112345678",
        "Who is this?",
    )
    (sg24_row,) = getallsms(sandbox, status=5)["smss"].values()
    assert (sg24_row["id"], sg24_row["sendto"], sg24_row["deviceid"]) == (sg24["id"], "+4915112345678", 1002)
    (tb_row,) = textboost_list(sandbox)["data"]
    assert (tb_row["uid"], tb_row["from"], tb_row["to"], tb_row["direction"]) == (
        textboost["id"],
        "4915112345678",
        "ACME",
        "incoming",
    )


def test_an_injected_reply_dated_later_shows_once_the_clock_gets_there(sandbox):
    later = sandbox.inject_reply("smstools", "+31612345678", "STOP", received_at="2099-01-01T00:00:00")
    earlier = sandbox.inject_reply("smstools", "+31612345679", "ok", received_at="2020-01-01T00:00:00+01:00")
    assert (later["received_at"], later["arrived"]) == ("2099-01-01T00:00:00.000000Z", False)
    assert earlier["received_at"] == "2019-12-31T23:00:00.000000Z"
    assert [m["message"] for m in smstools_inbox(sandbox)["messages"]] == ["ok"]


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"gateway": "twilio", "from": "+31612345678", "text": "STOP"}, "unknown gateway"),
        ({"gateway": "smstools", "from": "+3161234", "text": "STOP"}, "from must be a valid phone"),
        ({"gateway": "smstools", "text": "STOP"}, "from must be a valid phone"),
        ({"gateway": "smstools", "from": "+31612345678", "text": ""}, "text must be"),
        ({"gateway": "smstools", "from": "+31612345678", "text": ["STOP"]}, "text must be"),
        ({"gateway": "smstools", "from": "+31612345678", "text": "x", "received_at": "soon"}, "ISO 8601"),
        ({"gateway": "smstools", "from": "+31612345678", "text": "x", "to": {"n": 1}}, "to must be"),
        ({"gateway": "smsgateway24", "from": "+31612345678", "text": "x", "to": 4711}, "devices 1001, 1002"),
        (["STOP"], "expected"),
    ],
)
def test_injection_refuses_what_is_not_a_reply(sandbox, body, problem):
    answer = requests.post(f"{sandbox.url}/_sandbox/replies", json=body)
    assert answer.status_code == 400 and problem in answer.json()["detail"]
    assert sandbox.replies() == []


def test_replies_survive_a_restart_with_the_state_file(tmp_path):
    state_file = str(tmp_path / "sandbox.sqlite")
    stopper = replying(replies.STOP)[0]
    with run_sandbox(state_file=state_file, frozen_clock=True) as server:
        smstools_send(server, [stopper])
        injected = server.inject_reply("textboost", "+31612345678", "Stopp")
        server.set_reply_simulation(seconds=60)
        before = server.replies()
    with run_sandbox(state_file=state_file, frozen_clock=True) as server:
        assert server.replies() == before
        assert injected in server.replies()
        assert requests.get(f"{server.url}/_sandbox/reply-simulation").json()["seconds"] == 60
        smstools_send(server, [stopper])  # the number answered already: no second reply
        assert len(server.replies("smstools")) == 1
        server.advance(ALL_IN)
        (row,) = smstools_inbox(server)["messages"]
        assert "+" + row["sender"] == stopper


def test_the_cli_sets_the_reply_simulation_and_refuses_a_share_above_one(capsys):
    from airflow_provider_sms.sandbox.__main__ import build_parser, main

    options = vars(build_parser().parse_args(["--reply-rate", "0.2", "--reply-seconds", "30"]))
    config = SandboxConfig.from_options(
        **{k: v for k, v in options.items() if k not in ("host", "port", "log_level")}
    )
    assert (config.reply_rate, config.reply_seconds) == (0.2, 30)
    assert "replies: 20% of recipients reply" in config.describe("http://127.0.0.1:8025")
    assert main(["--reply-rate", "2"]) == 2
    assert "reply rate must be a share from 0 to 1" in capsys.readouterr().err
