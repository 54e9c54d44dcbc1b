"""Every paged list of the sandbox answers exactly what the straightforward listing did (walk the
dict in its own order, skip ``offset`` items, filter by scanning): same items, order and totals,
over randomized states built through the real HTTP API, with page sizes and pages at random.

The lists now slice an index kept beside each table (``sandbox/ordered.py``) and getallsms finds
``begindate``/``enddate`` by bisection; these tests are what says that changed no answer.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from itertools import islice
from typing import Any

import pytest
import requests

from airflow_provider_sms.sandbox.state import SandboxState
from airflow_provider_sms.sandbox.testing import SandboxServer, run_sandbox
from airflow_provider_sms.sandbox.validation import parse_time

from .helpers import SG24_LOGIN, SMSTOOLS_AUTH, TEXTBOOST_AUTH

SG24_TIME = "%Y-%m-%d %H:%M:%S"


def _state(sandbox: SandboxServer) -> SandboxState:
    return sandbox.app.state.sandbox


def _reference_page(items: Any, page: int, size: int) -> list[Any]:
    """The old paging: walk the items from the start."""
    start = (page - 1) * size
    return list(islice(items, start, start + size))


class World:
    """Random traffic on the three gateways, and checks of every list against the reference."""

    def __init__(self, sandbox: SandboxServer, http: requests.Session, seed: int) -> None:
        self.sandbox, self.http, self.rng = sandbox, http, random.Random(seed)
        self.state = _state(sandbox)
        self.token = http.post(f"{sandbox.url}/getdata/gettoken", data=SG24_LOGIN).json()["token"]
        self.scheduled: list[str] = []  # Smstools messageids waiting in the outbox
        self.smstools_groups: list[int] = []
        self.smstools_contacts: list[int] = []
        self.textboost_groups: list[str] = []
        self.textboost_contacts: list[tuple[str, str]] = []
        self.customerids: list[str] = []

    # ------------------------------------------------------------------ traffic
    def number(self) -> str:
        tail = self.rng.choice(["13", "66"] + [f"{self.rng.randrange(100):02d}"] * 4)
        return f"3161{self.rng.randrange(10**5):05d}{tail}"

    def smstools(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, self.sandbox.url + path, headers=SMSTOOLS_AUTH, **kwargs)
        return response.json()

    def textboost(self, method: str, path: str, **kwargs: Any) -> Any:
        prefix = self.rng.choice(["/api/v3", "/api/http"])
        response = self.http.request(
            method, self.sandbox.url + prefix + path, headers=TEXTBOOST_AUTH, **kwargs
        )
        return response.json()

    def later(self, minutes: int, fmt: str) -> str:
        when = datetime.fromtimestamp(self.state.now() + minutes * 60, UTC)
        return when.strftime(fmt)

    def step(self, action: str | None = None) -> None:
        rng = self.rng
        action = action or rng.choice(
            ["smstools_send"] * 3 + ["sg24_send"] * 3 + ["textboost_send"] * 3
            + ["advance"] * 3 + ["cancel", "smstools_contacts", "smstools_move", "smstools_delete"]
            + ["textboost_contacts", "textboost_update", "textboost_delete"]
        )  # fmt: skip
        if action == "advance":
            self.sandbox.advance(rng.choice([0.3, 1, 1.5, 7, 45, 200]))
        elif action == "smstools_send":
            body: dict[str, Any] = {
                "message": rng.choice(["Hi", "Sale!", "Code 1234"]),
                "sender": "Shop",
                "to": [self.number() for _ in range(rng.randrange(1, 15))],
            }
            if rng.random() < 0.3:
                body["date"] = self.later(rng.randrange(2, 90), "%Y-%m-%d %H:%M")
            answer = self.smstools("POST", "/v1/message/send", json=body)
            if "date" in body:
                self.scheduled += [mid for mid in answer["messageids"] if mid]
        elif action == "cancel" and not self.scheduled:
            when = self.later(30, "%Y-%m-%d %H:%M")
            body = {"message": "Later", "sender": "Shop", "to": self.number(), "date": when}
            self.scheduled.append(self.smstools("POST", "/v1/message/send", json=body)["messageid"])
            self.step("cancel")
        elif action == "cancel" and self.scheduled:
            messageid = self.scheduled.pop(rng.randrange(len(self.scheduled)))
            self.smstools("DELETE", f"/v1/outbox/{messageid}")
        elif action == "sg24_send":
            rows = []
            for _ in range(rng.randrange(1, 15)):
                row = {
                    "sendto": "+" + self.number(),
                    "body": rng.choice(["Hi", "Sale!"]),
                    "device_id": rng.choice([1001, 1002]),
                    "sim": rng.choice([0, 1]),
                }
                if rng.random() < 0.4:
                    row["customerid"] = str(rng.randrange(1, 30))
                    self.customerids.append(row["customerid"])
                if rng.random() < 0.2:
                    row["timetosend"] = self.later(rng.randrange(2, 90), SG24_TIME)
                rows.append(row)
            data = {"token": self.token, "smsdata": rows}
            self.http.post(f"{self.sandbox.url}/getdata/addalotofsms", data={"datajson": json.dumps(data)})
        elif action == "textboost_send":
            recipients = ",".join(self.number() for _ in range(rng.randrange(1, 15)))
            sms = {"recipient": recipients, "sender_id": "Shop", "type": "plain", "message": "Hello"}
            self.textboost("POST", "/sms/send", json=sms)
        elif action == "smstools_contacts":
            if len(self.smstools_groups) < 3:
                answer = self.smstools("POST", "/v1/groups", json={"name": f"G{rng.randrange(99)}"})
                self.smstools_groups.append(answer["ID"][0])
            group = rng.choice(self.smstools_groups)
            rows = [{"phone": self.number(), "groupid": group} for _ in range(rng.randrange(1, 10))]
            self.smstools_contacts += self.smstools("POST", "/v1/contact", json=rows)["IDs"]
        elif action == "smstools_move" and self.smstools_contacts:
            contact = rng.choice(self.smstools_contacts)
            self.smstools(
                "PATCH", "/v1/contact", json={"ID": contact, "groupid": rng.choice(self.smstools_groups)}
            )
        elif action == "smstools_delete" and self.smstools_contacts:
            contact = self.smstools_contacts.pop(rng.randrange(len(self.smstools_contacts)))
            self.smstools("DELETE", f"/v1/contact/{contact}")
        elif action == "textboost_contacts":
            if len(self.textboost_groups) < 3:
                self.textboost_groups.append(
                    self.textboost("POST", "/contacts", json={"name": "G"})["data"]["uid"]
                )
            group = rng.choice(self.textboost_groups)
            for _ in range(rng.randrange(1, 6)):
                contact = self.textboost("POST", f"/contacts/{group}/store", json={"phone": self.number()})
                self.textboost_contacts.append((group, contact["data"]["uid"]))
        elif action == "textboost_update" and self.textboost_contacts:
            group, contact = rng.choice(self.textboost_contacts)
            self.textboost("PATCH", f"/contacts/{group}/update/{contact}", json={"phone": self.number()})
        elif action == "textboost_delete" and self.textboost_contacts:
            group, contact = self.textboost_contacts.pop(rng.randrange(len(self.textboost_contacts)))
            self.textboost("DELETE", f"/contacts/{group}/delete/{contact}")

    # ------------------------------------------------------------------ checks
    def pages(self, total: int, largest: int) -> list[tuple[int, int]]:
        """(page, size) pairs: random ones, the last page and the one after it."""
        pairs = []
        for _ in range(4):
            size = self.rng.choice([1, 2, 3, 7, 25, 100, largest])
            last = max(1, -(-total // size))
            pairs += [(self.rng.randrange(1, last + 1), size), (last, size), (last + 1, size)]
        return pairs

    def check_smstools(self) -> None:
        state = self.state
        lists: list[tuple[str, Any, str]] = [
            ("/v1/message/logging", dict.values(state.messages["smstools"].rows), "messages"),
            ("/v1/contact", dict.values(state.contacts["smstools"].rows), "contacts"),
        ]
        contacts = state.contacts["smstools"].rows
        for group in self.smstools_groups:
            members = state.members.get(("smstools", str(group)), {})
            lists.append((f"/v1/groups/{group}", [contacts[key] for key in dict.keys(members)], "contacts"))
        for path, items, field in lists:
            items = list(items)
            for page, size in self.pages(len(items), 2000):
                answer = self.smstools("GET", path, params={"page": page, "limit": size})
                expected = _reference_page(items, page, size)
                got = [row["message_ID"] if field == "messages" else row["ID"] for row in answer[field]]
                assert got == [item.id for item in expected], (path, page, size)
                assert (answer["total"], answer["shown"]) == (len(items), len(expected))

    def check_textboost(self) -> None:
        state = self.state
        contacts = state.contacts["textboost"].rows
        lists = [
            ("GET", "/sms", list(dict.values(state.messages["textboost"].rows))),
            ("GET", "/contacts", list(dict.values(state.groups["textboost"].rows))),
        ]
        for group in self.textboost_groups:
            members = state.members.get(("textboost", group), {})
            lists.append(("POST", f"/contacts/{group}/all", [contacts[key] for key in dict.keys(members)]))
        for method, path, items in lists:
            for page, size in self.pages(len(items), 1000):
                answer = self.textboost(method, path, params={"page": page, "per_page": size})["data"]
                expected = _reference_page(items, page, size)
                assert [row["uid"] for row in answer["data"]] == [item.id for item in expected], (path, page)
                start = (page - 1) * size
                assert (answer["total"], answer["from"], answer["to"]) == (
                    len(items),
                    start + 1 if expected else None,
                    start + len(expected) if expected else None,
                )

    def reference_getallsms(self, filters: dict[str, Any]) -> list[int]:
        """The ids getallsms listed before: a scan of every message (or of the customerid's)."""
        state, now = self.state, self.state.now()
        rows = state.messages["smsgateway24"].rows
        if "customerid" in filters:
            candidates: Any = [rows[key] for key in state.by_customerid.get(filters["customerid"], ())]
        else:
            candidates = dict.values(rows)
        begin = parse_time(filters.get("begindate"), (SG24_TIME, "%Y-%m-%d"))
        end = parse_time(filters.get("enddate"), (SG24_TIME, "%Y-%m-%d"))
        if end is not None and len(filters["enddate"]) == 10:
            end += 86_400 - 1e-6
        found = []
        for message in candidates:
            extra = message.extra or {}
            if "device_id" in filters and extra.get("device_id") != filters["device_id"]:
                continue
            if "sim" in filters and extra.get("sim") != filters["sim"]:
                continue
            if (begin is not None and message.created_at < begin) or (
                end is not None and message.created_at > end
            ):
                continue
            if "phone" in filters and filters["phone"] not in message.recipient:
                continue
            if "status" in filters and state.status(message, now) != filters["status"]:
                continue
            found.append(message.id)
        return found[::-1] if filters.get("orderbydesc") else found

    def check_getallsms(self) -> None:
        rng = self.rng
        messages = list(dict.values(self.state.messages["smsgateway24"].rows))
        for _ in range(12):
            filters: dict[str, Any] = {}
            if messages and rng.random() < 0.7:
                low, high = sorted(rng.choice(messages).created_at + rng.uniform(-2, 2) for _ in range(2))
                fmt = SG24_TIME if rng.random() < 0.8 else "%Y-%m-%d"
                if rng.random() < 0.8:
                    filters["begindate"] = datetime.fromtimestamp(low, UTC).strftime(fmt)
                if rng.random() < 0.6:
                    filters["enddate"] = datetime.fromtimestamp(high, UTC).strftime(fmt)
            if rng.random() < 0.3:
                filters["device_id"] = rng.choice([1001, 1002])
            if rng.random() < 0.3:
                filters["sim"] = rng.choice([0, 1])
            if rng.random() < 0.3:
                filters["status"] = rng.choice([1, 2, 3, 6, 7, 8, 9])
            if rng.random() < 0.2 and self.customerids:
                filters["customerid"] = rng.choice(self.customerids)
            if rng.random() < 0.2:
                filters["phone"] = str(rng.randrange(10, 99))
            filters["orderbydesc"] = rng.choice([0, 1])
            answer = self.http.post(
                f"{self.sandbox.url}/getdata/getallsms", data={"token": self.token, **filters}
            ).json()
            expected = self.reference_getallsms(filters)
            assert answer["count"] == len(expected), filters
            assert [int(key) for key in answer["smss"] or {}] == expected, filters
            assert [row["id"] for row in (answer["smss"] or {}).values()] == expected

    def check(self) -> None:
        self.check_smstools()
        self.check_textboost()
        self.check_getallsms()


@pytest.mark.parametrize("seed", range(3))
def test_every_list_answers_what_the_straightforward_listing_did(sandbox, http, seed):
    # The reference lists sent messages only; replies merged into the listings are checked in
    # tests/sandbox/test_sandbox_replies.py and tests/integration/test_replies_sandbox.py.
    sandbox.set_reply_simulation(rate=0)
    world = World(sandbox, http, seed)
    for _ in range(4):
        for _ in range(25):
            world.step()
        # Each round has removals in the middle of the tables, which the index must get over.
        for action in ("smstools_contacts", "smstools_move", "smstools_delete", "textboost_contacts"):
            world.step(action)
        for action in ("textboost_update", "textboost_delete", "cancel"):
            world.step(action)
        world.check()
    # The random traffic reached the cases that matter: removals, moves and scheduled messages.
    counts = world.sandbox.stats()["requests"]["by_endpoint"]
    assert counts["smstools"].get("DELETE /v1/outbox/{item_id}", 0) > 0
    assert counts["smstools"].get("DELETE /v1/contact/{contact_id}", 0) > 0
    assert len(world.state.messages["smsgateway24"]) > 50


def test_getallsms_answers_the_same_when_a_restored_state_is_not_in_creation_order(tmp_path, http):
    """A state file gives its rows back in the order they were first saved, not created: then
    getallsms cannot bisect by creation time and must still filter every message."""
    state_file = str(tmp_path / "state.db")
    with run_sandbox(frozen_clock=True, state_file=state_file, save_interval=3600) as sandbox:
        world = World(sandbox, http, 7)
        for _ in range(60):
            world.step()
        customerids = world.customerids
    with run_sandbox(frozen_clock=True, state_file=state_file) as sandbox:
        world = World(sandbox, http, 8)
        world.customerids = customerids
        rows = world.state.messages["smsgateway24"].rows
        created = [message.created_at for message in dict.values(rows)]
        assert created != sorted(created), "the restored rows came back in creation order: no test"
        assert rows.monotone() is False
        world.check_getallsms()
        for _ in range(20):
            world.step()
        world.check()
