"""What the PostgreSQL ledger's indexes cost a campaign's first try: an experiment for issue 20.

``python -m benchmarks.ledger_schema [--batches 150] [--batch 1000] [--repeats 2]``

A first try writes each sent row twice: inserted as ``sending`` (``record_sending``), then marked
``accepted`` with the gateway's id (``mark``). The mark changes ``state`` (in the campaigns page's
index) and ``message_id`` (in the report's look-up index), so PostgreSQL can never update the row in
place (a HOT update): every mark adds an entry to each index. This runs the two statements, shaped
as ``storage/ledger.py`` writes them (arrays unnested, one statement and one commit per batch), on a
table with the ledger's columns and ``fillfactor`` in three layouts:

* **as today**: the primary key, ``(campaign_key, created_at, state, segments)`` and the partial
  ``(gateway, message_id) WHERE message_id IS NOT NULL``;
* **ids apart**: ``(campaign_key, created_at)`` only, the gateway's ids inserted into a table of
  their own (primary key ``(gateway, message_id)``) in the mark's transaction: the mark is HOT;
* **primary key only**: the floor, no secondary index at all.

Times are wall-clock per message (client and server, loopback), statistics refreshed after 1, 10
and 100 batches as the engine does. Not the product's code: what a schema change would buy.
"""

from __future__ import annotations

import argparse
import random
import time

from airflow_provider_sms.storage.ledger import CAMPAIGN_INDEX, COLUMNS, FILLFACTOR, GATEWAY_INDEX, KEY
from benchmarks.common import PG_ADMIN_DB, PG_HOST, PG_PORT, PG_USER

TABLE, IDS = "sms_schema_experiment", "sms_schema_experiment_ids"
# The ledger's own columns, key and fill factor (storage/ledger.py), as MessageLedger creates them.
SCHEMA = ", ".join(f"{name} {'TIMESTAMPTZ' if kind == 'TIMESTAMP' else kind}" for name, kind in COLUMNS)
CREATE = f"CREATE TABLE {TABLE} ({SCHEMA}, PRIMARY KEY ({', '.join(KEY)})) WITH (fillfactor = {FILLFACTOR})"
_, CAMPAIGN_COLUMNS = CAMPAIGN_INDEX
_, GATEWAY_COLUMNS, GATEWAY_WHERE = GATEWAY_INDEX
LAYOUTS = {
    "as today": [
        f"CREATE INDEX ON {TABLE} ({', '.join(CAMPAIGN_COLUMNS)})",
        f"CREATE INDEX ON {TABLE} ({', '.join(GATEWAY_COLUMNS)}) WHERE {GATEWAY_WHERE}",
    ],
    "ids apart": [  # the campaign index without the columns a mark changes
        f"CREATE INDEX ON {TABLE} ({', '.join(c for c in CAMPAIGN_COLUMNS if c not in ('state', 'segments'))})",
        f"CREATE TABLE {IDS} (gateway VARCHAR(32) NOT NULL, message_id TEXT NOT NULL, "
        "campaign_key VARCHAR(250) NOT NULL, recipient VARCHAR(250) NOT NULL, PRIMARY KEY (gateway, message_id))",
    ],
    "primary key only": [],
}
RECORD = f"""WITH v (recipient, idempotency_key) AS (SELECT * FROM unnest(%s::text[], %s::text[]))
INSERT INTO {TABLE} (campaign_key, recipient, idempotency_key, gateway, conn_id, source_row, body_hash,
 segments, state, message_id, status, raw_status, error, attempts, created_at, updated_at, sent_at)
SELECT 'bench-campaign', recipient, idempotency_key, 'smstools', 'sms_default', 1,
 '0123456789abcdef0123456789abcdef', 1, 'sending', NULL, NULL, NULL, NULL, 1, now(), now(), now()
FROM v WHERE true ON CONFLICT (campaign_key, recipient) DO NOTHING"""
MARK = f"""WITH v (recipient, message_id) AS (SELECT * FROM unnest(%s::text[], %s::text[]))
UPDATE {TABLE} AS t SET state = 'accepted', message_id = v.message_id, status = 'sent', raw_status = NULL,
 error = NULL, updated_at = now() FROM v WHERE t.campaign_key = 'bench-campaign' AND t.recipient = v.recipient"""
IDS_INSERT = f"""INSERT INTO {IDS} (gateway, message_id, campaign_key, recipient)
SELECT 'smstools', m, 'bench-campaign', r FROM unnest(%s::text[], %s::text[]) AS u (r, m)"""


def _array(values: list[str]) -> str:
    return '{"' + '","'.join(values) + '"}'


def run(conn, layout: str, batches: int, batch: int) -> tuple[float, float]:
    """Microseconds per message for the record and the mark."""
    with conn.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {TABLE}, {IDS}")
        cur.execute(CREATE)
        for sql in LAYOUTS[layout]:
            cur.execute(sql)
    conn.commit()
    rng = random.Random(7)
    record = mark = 0.0
    for n in range(batches):
        recipients = [f"+316{10_000_000 + n * batch + i}" for i in range(batch)]
        keys = [str(rng.getrandbits(40)) for _ in recipients]
        ids = [f"{rng.getrandbits(64):016x}" for _ in recipients]
        with conn.cursor() as cur:
            started = time.perf_counter()
            cur.execute(RECORD, (_array(recipients), _array(keys)))
            conn.commit()
            record += time.perf_counter() - started
            if n in (1, 10, 100):  # as the engine's analyze at 1,000, 10,000, 100,000 rows
                cur.execute(f"ANALYZE {TABLE}")
                conn.commit()
            started = time.perf_counter()
            cur.execute(MARK, (_array(recipients), _array(ids)))
            if layout == "ids apart":
                cur.execute(IDS_INSERT, (_array(recipients), _array(ids)))
            conn.commit()
            mark += time.perf_counter() - started
    with conn.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {TABLE}, {IDS}")
    conn.commit()
    total = batches * batch
    return record / total * 1e6, mark / total * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=150)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    import psycopg2

    conn = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=PG_ADMIN_DB)
    try:
        print(f"{args.batches} batches of {args.batch}, µs per message (wall, client and server)")
        for repeat in range(args.repeats):
            for layout in LAYOUTS:
                record, mark = run(conn, layout, args.batches, args.batch)
                print(
                    f"run {repeat + 1}  {layout:17s} record {record:5.1f}  mark {mark:5.1f}  both {record + mark:5.1f}"
                )
    finally:
        conn.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
