#!/usr/bin/env python
"""Seed a small customer warehouse for the example DAGs: tables ``customers`` and ``opt_outs``.

The data is deterministic (same ``--customers`` and ``--seed``, same rows) and made to exercise what
the example DAGs show: phone numbers in several formats, a few invalid ones, duplicates, customers
who unsubscribed or opted out, and numbers whose last two digits tell the sandbox gateway how the
message ends (``…13`` not delivered, ``…66`` failed, the rest delivered).

    python scripts/seed_warehouse.py --conn-id warehouse --customers 300

writes through the Airflow connection ``warehouse`` (any SQL connection: SQLite, PostgreSQL), so
``AIRFLOW_CONN_WAREHOUSE`` must be set; ``--sqlite FILE`` sets it for you.

:func:`expected` computes, from the same generator, what the DAGs must produce: the tests and the
demo compare the tables and the sandbox with it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

FIRST_NAMES = [
    "Anna",
    "Ben",
    "Clara",
    "David",
    "Emma",
    "Felix",
    "Greta",
    "Hannah",
    "Ilias",
    "Jonas",
    "Karla",
    "Leon",
    "Mia",
    "Noah",
    "Olivia",
    "Paul",
    "Queenie",
    "Rafael",
    "Sofia",
    "Tim",
    "Ursula",
    "Viktor",
    "Wiebke",
    "Xaver",
    "Yara",
    "Zoe",
]
LAST_NAMES = [
    "Becker",
    "Fischer",
    "Hoffmann",
    "Klein",
    "Koch",
    "Meyer",
    "Müller",
    "Richter",
    "Schmidt",
    "Schulz",
    "Wagner",
    "Weber",
]
TIMEZONES = ("Europe/Berlin", "Europe/Vienna", "Europe/Zurich")
SEGMENTS = ("loyal", "new", "lapsed")
MOBILE_PREFIX = "+49151"
FIRST_NUMBER = 10_000_000  # customer i gets +49 151 <FIRST_NUMBER + i>: 8 digits, a valid German mobile
INVALID_EVERY = 50  # customer 7, 57, 107 ... has an unusable phone
UNSUBSCRIBED_EVERY = 40  # customer 11, 51, 91 ... unsubscribed
OPT_OUT_EVERY = 45  # customer 20, 65, 110 ... is in the opt_outs table
DUPLICATE_EVERY = 97  # customer 96, 193, 290 ... shares the phone of the customer before
INVALID_PHONES = ("12345", "n/a", "", "+49 151", "call me")

CUSTOMER_COLUMNS = (
    "customer_id",
    "first_name",
    "last_name",
    "phone",
    "country",
    "timezone",
    "segment",
    "unsubscribed",
    "signup_date",
)


@dataclass(frozen=True)
class Customer:
    customer_id: int
    first_name: str
    last_name: str
    phone: str | None  # as the warehouse stores it (several formats)
    e164: str | None  # what it normalises to; None when unusable
    timezone: str
    segment: str
    unsubscribed: bool
    opted_out: bool

    def row(self) -> tuple:
        signup = f"2025-{1 + self.customer_id % 12:02d}-{1 + self.customer_id % 28:02d}"
        return (
            self.customer_id,
            self.first_name,
            self.last_name,
            self.phone,
            "DE",
            self.timezone,
            self.segment,
            int(self.unsubscribed),
            signup,
        )


def generate(count: int, seed: int = 7) -> list[Customer]:
    """The customers, deterministic for (count, seed)."""
    rng = random.Random(seed)
    customers: list[Customer] = []
    for i in range(count):
        number = f"{FIRST_NUMBER + i:08d}"
        e164: str | None = MOBILE_PREFIX + number
        if i % DUPLICATE_EVERY == DUPLICATE_EVERY - 1 and customers and customers[-1].e164:
            e164 = customers[-1].e164  # the same person registered twice
            number = e164[len(MOBILE_PREFIX) :]
        style = i % 4  # the formats warehouses really hold
        phone: str | None
        if style == 0:
            phone = e164
        elif style == 1:
            phone = f"0151 {number[:4]} {number[4:]}"
        elif style == 2:
            phone = f"+49 151 {number[:4]}-{number[4:]}"
        else:
            phone = f"0049151{number}"
        if i % INVALID_EVERY == 7:
            phone, e164 = INVALID_PHONES[(i // INVALID_EVERY) % len(INVALID_PHONES)] or None, None
        customers.append(
            Customer(
                customer_id=i + 1,
                first_name=rng.choice(FIRST_NAMES),
                last_name=rng.choice(LAST_NAMES),
                phone=phone,
                e164=e164,
                timezone=TIMEZONES[i % len(TIMEZONES)],
                segment=SEGMENTS[rng.randrange(len(SEGMENTS))],
                unsubscribed=i % UNSUBSCRIBED_EVERY == 11,
                opted_out=i % OPT_OUT_EVERY == 20 and e164 is not None,
            )
        )
    return customers


def outcome_of(e164: str) -> str:
    """How the sandbox ends a message to ``e164`` (its documented, deterministic rule)."""
    if e164.endswith("13"):
        return "undelivered"
    if e164.endswith("66"):
        return "failed"
    return "delivered"


@dataclass
class Expected:
    """What a bulk send to ``customers`` (in this order) must record, and what the sandbox must end with."""

    input: int = 0
    rejected: int = 0
    suppressed: int = 0
    duplicates: int = 0
    recipients: set[str] = field(default_factory=set)  # numbers that must receive exactly one message
    subscribers: set[str] = field(default_factory=set)  # numbers the contact sync puts in every list
    opted_out: set[str] = field(default_factory=set)  # numbers in opt_outs: no DAG may message them
    outcomes: Counter = field(default_factory=Counter)  # final status → messages

    @property
    def accepted(self) -> int:
        return len(self.recipients)

    def as_dict(self) -> dict[str, Any]:
        return {
            "input": self.input,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "suppressed": self.suppressed,
            "duplicates": self.duplicates,
            "subscribers": len(self.subscribers),
            "opted_out": len(self.opted_out),
            "outcomes": dict(self.outcomes),
        }


def expected(customers: list[Customer]) -> Expected:
    """Outcomes derived from the generator alone (not from the provider's code): the first row of a
    phone counts, later rows are duplicates; unsubscribed or opted-out numbers are suppressed."""
    result = Expected()
    opted_out = {c.e164 for c in customers if c.opted_out and c.e164}
    seen: set[str] = set()
    for c in customers:
        result.input += 1
        if c.e164 is None:
            result.rejected += 1
            continue
        if c.e164 in seen:
            result.duplicates += 1
            continue
        seen.add(c.e164)
        if c.unsubscribed or c.e164 in opted_out:
            result.suppressed += 1
            continue
        result.recipients.add(c.e164)
        result.outcomes[outcome_of(c.e164)] += 1
    # The contact sync keeps the customers who did not unsubscribe and whose number is not opted out
    # (by number: a number opted out under one customer stays out when another customer shares it).
    result.opted_out = opted_out
    result.subscribers = {
        c.e164 for c in customers if c.e164 and not c.unsubscribed and c.e164 not in opted_out
    }
    return result


def opt_out_rows(customers: list[Customer]) -> list[tuple[int, str, str]]:
    """The opt_outs table: the customer and the number in national format, as a complaints desk types it."""
    return [
        (c.customer_id, f"0{c.e164[3:6]} {c.e164[6:]}", f"2026-0{1 + c.customer_id % 9}-15")
        for c in customers
        if c.opted_out and c.e164
    ]


def seed(conn_id: str, count: int, seed_value: int = 7) -> dict[str, int]:
    """(Re)create ``customers`` and ``opt_outs`` on the Airflow SQL connection ``conn_id``."""
    from airflow_provider_sms.storage.table import get_sql_hook

    customers = generate(count, seed_value)
    hook = get_sql_hook(conn_id)
    hook.run(
        [
            "DROP TABLE IF EXISTS customers",
            "DROP TABLE IF EXISTS opt_outs",
            "CREATE TABLE customers (customer_id INTEGER PRIMARY KEY, first_name VARCHAR(100), "
            "last_name VARCHAR(100), phone VARCHAR(50), country CHAR(2), timezone VARCHAR(64), "
            "segment VARCHAR(32), unsubscribed INTEGER NOT NULL, signup_date VARCHAR(10))",
            "CREATE TABLE opt_outs (customer_id INTEGER PRIMARY KEY, phone VARCHAR(50) NOT NULL, "
            "opted_out_on VARCHAR(10))",
        ],
        autocommit=True,
    )
    rows = [c.row() for c in customers]
    hook.insert_rows("customers", rows, target_fields=list(CUSTOMER_COLUMNS), commit_every=5_000)
    opt_outs = opt_out_rows(customers)
    hook.insert_rows("opt_outs", opt_outs, target_fields=["customer_id", "phone", "opted_out_on"])
    return {"customers": len(rows), "opt_outs": len(opt_outs)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conn-id", default="warehouse", help="Airflow SQL connection (default: warehouse)")
    parser.add_argument("--sqlite", metavar="FILE", help="use this SQLite file as the warehouse connection")
    parser.add_argument("--customers", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    if args.sqlite:
        os.environ[f"AIRFLOW_CONN_{args.conn_id.upper()}"] = json.dumps(
            {"conn_type": "sqlite", "host": os.path.abspath(args.sqlite)}
        )
    counts = seed(args.conn_id, args.customers, args.seed)
    print(json.dumps({"seeded": counts, "expected": expected(generate(args.customers, args.seed)).as_dict()}))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    sys.exit(main())
