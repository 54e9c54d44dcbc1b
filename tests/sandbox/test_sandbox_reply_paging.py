"""Lists with replies answer what the straightforward listing did, now that replies are kept in
arrival order (``SandboxState.reply_order``) and TextBoost's ``GET /sms`` finds where a page starts
in each of its two lists by bisection (``textboost.Merged``) instead of walking the merge.

The reference is the code this replaced: scan every reply, keep the arrived ones, sort them by
(received_at, seq), then ``heapq.merge`` them with the messages (at equal times the message first)
and walk to the page; for getallsms, filter every arrived reply. The states are random traffic
through the real HTTP API: simulated and injected replies (many at equal times), cancelled messages
(which take their reply with them), a reset, a restart from the state file.
"""

from __future__ import annotations

import heapq
import random
from datetime import UTC, datetime
from typing import Any

import pytest

from airflow_provider_sms.sandbox import textboost
from airflow_provider_sms.sandbox.ordered import SortedRows
from airflow_provider_sms.sandbox.state import Message, Reply
from airflow_provider_sms.sandbox.testing import run_sandbox
from airflow_provider_sms.sandbox.validation import parse_time

from .test_sandbox_paging import SG24_TIME, World, _reference_page

INCOMING = 5


def _time(item: Message | Reply) -> float:
    return item.received_at if isinstance(item, Reply) else item.created_at


# ---------------------------------------------------------------------------------------------------
# Merged, on its own: every slice equals the same slice of the straightforward merge


def _message(seq: int, at: float) -> Message:
    return Message("textboost", f"m{seq}", seq, "+31612345678", "Hi", at, at)


def _reply(seq: int, at: float) -> Reply:
    return Reply("textboost", seq, "+31612345678", None, "ok", at, "injected")


@pytest.mark.parametrize("seed", range(40))
def test_a_slice_of_the_merge_is_the_same_slice_of_the_straightforward_merge(seed: int) -> None:
    rng = random.Random(seed)
    # Few distinct times: many ties between messages, between replies, and across the two.
    times = [rng.choice([0.0, 0.5, 1.0, 2.0, 3.5]) for _ in range(4)] + [rng.uniform(0, 4) for _ in range(2)]
    sent = sorted((_message(i, rng.choice(times)) for i in range(rng.randrange(0, 60))), key=_time)
    order = SortedRows(lambda reply: (reply.received_at, reply.seq))
    for seq in rng.sample(range(1000), rng.randrange(0, 60)):  # added in any order
        order.add(_reply(seq, rng.choice(times)))
    received = order.window()
    merged = textboost.Merged(sent, received, sorted_sent=True)
    reference = list(heapq.merge(sent, list(received), key=_time))
    # The stable merge of two sorted lists is their sort by (time, messages first, position).
    ranked = sorted(
        [(m.created_at, 0, i, m) for i, m in enumerate(sent)]
        + [(r.received_at, 1, i, r) for i, r in enumerate(received)],
        key=lambda row: row[:3],
    )
    assert reference == [row[3] for row in ranked]
    assert len(merged) == len(reference) and list(merged) == reference
    total = len(reference)
    for position in range(total + 1):
        i, j = merged.split(position)
        assert (i, j) == (
            sum(isinstance(item, Message) for item in reference[:position]),
            sum(isinstance(item, Reply) for item in reference[:position]),
        )
    for _ in range(60):
        start = rng.randrange(-3, total + 6)
        stop = (
            start + rng.choice([0, 1, 2, 3, 7, 25, 1000])
            if rng.random() < 0.8
            else rng.randrange(-3, total + 6)
        )
        assert merged[start:stop] == reference[start:stop], (start, stop)
    for size in (1, 2, 3, 7, 25, 1000):  # every page of every size, and the one after the last
        for page in range(1, -(-total // size) + 2):
            start = (page - 1) * size
            assert merged[start : start + size] == reference[start : start + size]
    for position in range(-total - 2, total + 2):
        if -total <= position < total:
            assert merged[position] is reference[position]
        else:
            with pytest.raises(IndexError):
                merged[position]
    assert merged[::2] == reference[::2] and merged[::-1] == reference[::-1]


def test_messages_not_in_creation_order_are_merged_by_walking_as_before() -> None:
    rng = random.Random(5)
    sent = [_message(i, rng.uniform(0, 10)) for i in range(50)]  # as a state file may give them back
    received = sorted((_reply(i, rng.uniform(0, 10)) for i in range(30)), key=_time)
    reference = list(heapq.merge(sent, received, key=_time))
    merged = textboost.Merged(sent, received, sorted_sent=False)
    for start in range(0, 85, 3):
        assert merged[start : start + 7] == reference[start : start + 7]


def test_a_reply_uid_leads_back_to_its_sequence_number() -> None:
    for seq in (1, 2, 999, 123_456_789, 2**39):
        reply = _reply(seq, 0.0)
        assert textboost.reply_seq(textboost.reply_id(reply)) == seq
    assert textboost.reply_seq("not hex") is None


# ---------------------------------------------------------------------------------------------------
# Over HTTP: random traffic with replies, every list against the straightforward listing


class ReplyWorld(World):
    """``World``'s traffic on the three gateways, plus replies: simulated at random rates and
    delays (0 s: all at one time), injected now (the very time of the messages sent now) or at
    another time, and checks of every list that shows replies."""

    def step(self, action: str | None = None) -> None:
        rng = self.rng
        action = action or rng.choice(
            ["smstools_send"] * 3 + ["sg24_send"] * 3 + ["textboost_send"] * 4 + ["advance"] * 3
            + ["cancel", "inject", "inject", "simulation"]
        )  # fmt: skip
        if action == "inject":
            gateway = rng.choice(["smstools", "smsgateway24", "textboost", "textboost"])
            when = None
            if rng.random() < 0.4:  # another time: past or future, on a whole second or not
                offset = rng.choice([-90, -2, 0.5, 3, 30, 400]) + rng.choice([0, rng.random()])
                when = datetime.fromtimestamp(self.state.now() + offset, UTC).isoformat()
            for _ in range(rng.choice([1, 1, 3])):  # several at the same time
                self.sandbox.inject_reply(
                    gateway, "+" + self.number(), rng.choice(["STOP", "ok"]), received_at=when
                )
        elif action == "simulation":
            self.sandbox.set_reply_simulation(rate=rng.choice([0, 0.3, 1]), seconds=rng.choice([0, 5, 120]))
        else:
            super().step(action)

    # ------------------------------------------------------------------ the reference
    def arrived(self, gateway: str) -> list[Reply]:
        """What ``arrived_replies`` answered before: a scan, then a sort."""
        now = self.state.now()
        rows = [reply for reply in dict.values(self.state.replies[gateway].rows) if reply.received_at <= now]
        return sorted(rows, key=lambda reply: (reply.received_at, reply.seq))

    def check_textboost_list(self) -> None:
        messages = list(dict.values(self.state.messages["textboost"].rows))
        items = list(heapq.merge(messages, self.arrived("textboost"), key=_time))
        ids = {id(reply): textboost.reply_id(reply) for reply in self.arrived("textboost")}
        for page, size in self.pages(len(items), 1000):
            answer = self.textboost("GET", "/sms", params={"page": page, "per_page": size})["data"]
            expected = _reference_page(items, page, size)
            got = [(row["uid"], row["direction"]) for row in answer["data"]]
            assert got == [
                (ids[id(item)], "incoming") if isinstance(item, Reply) else (item.id, "outgoing")
                for item in expected
            ], (page, size)
            start = (page - 1) * size
            assert (answer["total"], answer["from"], answer["to"]) == (
                len(items),
                start + 1 if expected else None,
                start + len(expected) if expected else None,
            )

    def check_smstools_inbox(self) -> None:
        items = self.arrived("smstools")
        for page, size in self.pages(len(items), 2000):
            answer = self.smstools("GET", "/v1/message/inbox", params={"page": page, "limit": size})
            expected = _reference_page(items, page, size)
            assert [row["ID"] for row in answer["messages"]] == [reply.seq for reply in expected]
            assert (answer["total"], answer["shown"]) == (len(items), len(expected))

    def reference_incoming(self, filters: dict[str, Any]) -> list[int]:
        """The replies getallsms listed before (status 5 or none), by scanning every arrived one."""
        begin = parse_time(filters.get("begindate"), (SG24_TIME, "%Y-%m-%d"))
        end = parse_time(filters.get("enddate"), (SG24_TIME, "%Y-%m-%d"))
        if end is not None and len(filters["enddate"]) == 10:
            end += 86_400 - 1e-6
        found = []
        for reply in self.arrived("smsgateway24"):
            extra = reply.extra or {}
            if (
                ("device_id" in filters and extra.get("device_id") != filters["device_id"])
                or ("sim" in filters and extra.get("sim") != filters["sim"])
                or (begin is not None and reply.received_at < begin)
                or (end is not None and reply.received_at > end)
                or ("phone" in filters and filters["phone"] not in reply.sender)
            ):
                continue
            found.append(900_000_000 + reply.seq)
        return found

    def check_incoming(self) -> None:
        rng = self.rng
        arrived = self.arrived("smsgateway24")
        for _ in range(10):
            filters: dict[str, Any] = {"status": INCOMING}
            if arrived and rng.random() < 0.7:
                low, high = sorted(rng.choice(arrived).received_at + rng.uniform(-3, 3) for _ in range(2))
                fmt = SG24_TIME if rng.random() < 0.8 else "%Y-%m-%d"
                if rng.random() < 0.7:
                    filters["begindate"] = datetime.fromtimestamp(low, UTC).strftime(fmt)
                if rng.random() < 0.7:
                    filters["enddate"] = datetime.fromtimestamp(high, UTC).strftime(fmt)
            if rng.random() < 0.3:
                filters["device_id"] = rng.choice([1001, 1002])
            if rng.random() < 0.2:
                filters["phone"] = str(rng.randrange(10, 99))
            filters["orderbydesc"] = rng.choice([0, 1])
            answer = self.http.post(
                f"{self.sandbox.url}/getdata/getallsms", data={"token": self.token, **filters}
            ).json()
            expected = self.reference_incoming(filters)
            expected = expected[::-1] if filters["orderbydesc"] else expected
            assert [int(key) for key in answer["smss"] or {}] == expected, filters
            assert answer["count"] == len(expected)
            count = self.http.post(
                f"{self.sandbox.url}/getdata/getallsms", data={"token": self.token, **filters, "onlycount": 1}
            ).json()["count"]
            assert count == len(expected)

    def check_everything_else(self) -> None:
        """The admin list and counts, and TextBoost's one-message lookup of a reply."""
        now = self.state.now()
        every = [
            reply
            for gateway in ("smstools", "smsgateway24", "textboost")
            for reply in dict.values(self.state.replies[gateway].rows)
        ]
        every.sort(key=lambda reply: (reply.received_at, reply.seq))
        listed = self.sandbox.replies()
        assert [(row["gateway"], row["text"], row["arrived"]) for row in listed] == [
            (reply.gateway, reply.text, reply.received_at <= now) for reply in every
        ]
        stats = self.sandbox.stats()["replies"]["by_gateway"]
        for gateway in ("smstools", "smsgateway24", "textboost"):
            arrived = len(self.arrived(gateway))
            assert stats[gateway] == {
                "arrived": arrived,
                "pending": len(self.state.replies[gateway]) - arrived,
            }
        for reply in self.rng.sample(
            list(dict.values(self.state.replies["textboost"].rows)),
            min(4, len(self.state.replies["textboost"])),
        ):
            answer = self.textboost("GET", f"/sms/{textboost.reply_id(reply)}")
            if reply.received_at <= now:
                assert (answer["data"]["uid"], answer["data"]["direction"]) == (
                    textboost.reply_id(reply),
                    "incoming",
                )
            else:  # not arrived yet: not found, as before
                assert answer["status"] == "error"

    def check(self) -> None:
        # The index holds exactly the stored replies, in arrival order.
        for gateway, table in self.state.replies.items():
            assert list(self.state.reply_order[gateway]) == sorted(
                dict.values(table.rows), key=lambda reply: (reply.received_at, reply.seq)
            )
        self.check_textboost_list()
        self.check_smstools_inbox()
        self.check_incoming()
        self.check_everything_else()


def _play(world: ReplyWorld, rounds: int, steps: int = 25) -> None:
    for _ in range(rounds):
        for _ in range(steps):
            world.step()
        for action in ("inject", "textboost_send", "inject", "cancel"):  # ties: all at this instant
            world.step(action)
        world.check()


def _replies_everywhere(state: Any) -> None:
    """The traffic reached what matters: arrived replies among the messages of each gateway."""
    now = state.now()
    for gateway in ("smstools", "smsgateway24", "textboost"):
        assert sum(reply.received_at <= now for reply in dict.values(state.replies[gateway].rows)) > 3, (
            gateway
        )


@pytest.mark.parametrize("seed", range(3))
def test_lists_with_replies_answer_what_the_straightforward_listing_did(sandbox, http, seed):
    sandbox.set_reply_simulation(rate=0.5, seconds=30)
    world = ReplyWorld(sandbox, http, seed)
    _play(world, 4)
    _replies_everywhere(world.state)
    counts = sandbox.stats()["requests"]["by_endpoint"]["smstools"]
    assert counts.get("DELETE /v1/outbox/{item_id}", 0) > 0  # cancelled messages took their replies
    sandbox.reset()  # the index is emptied with the rest
    assert all(len(order) == 0 for order in world.state.reply_order.values())
    world.check()
    sandbox.set_reply_simulation(rate=1, seconds=0)  # every reply of a batch at one time
    _play(world, 2)


def test_lists_with_replies_answer_the_same_after_a_restart_from_the_state_file(tmp_path, http):
    state_file = str(tmp_path / "state.db")
    with run_sandbox(
        frozen_clock=True, delivery_seconds=2, state_file=state_file, save_interval=3600
    ) as sandbox:
        sandbox.set_reply_simulation(rate=0.6, seconds=20)
        world = ReplyWorld(sandbox, http, 11)
        _play(world, 3)
        stored = {gateway: len(table) for gateway, table in world.state.replies.items()}
    with run_sandbox(frozen_clock=True, delivery_seconds=2, state_file=state_file) as sandbox:
        world = ReplyWorld(sandbox, http, 12)
        assert {gateway: len(order) for gateway, order in world.state.reply_order.items()} == stored
        _replies_everywhere(world.state)
        world.check()
        _play(world, 2)  # replies added after the restored ones
