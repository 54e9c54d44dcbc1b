"""One task try of a bulk send, as its own process: ``python campaign_worker.py SPEC.json``.

The spec names the connection, the ledger connection, the campaign key, the template and the
audience (connections come from ``AIRFLOW_CONN_*`` in the environment, as on an Airflow worker).
With ``"die_after_first_batch": true`` the process SIGKILLs itself as soon as the gateway has
answered its first request: a task whose worker died after the gateway stored the messages.
Prints one JSON line: ``{"summary": ...}`` or ``{"error": type, "message": ...}``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from types import SimpleNamespace

import pendulum


def main(spec_path: str) -> int:
    with open(spec_path) as f:
        spec = json.load(f)
    from airflow_provider_sms.operators.send import SmsBulkSendOperator

    operator = SmsBulkSendOperator(
        task_id="send",
        sms_conn_id=spec["sms_conn_id"],
        message=spec["message"],
        audience=spec["audience"],
        unsubscribed_column="unsub",
        ledger_conn_id=spec["ledger_conn_id"],
        campaign_key=spec["campaign_key"],
        batch_size=spec.get("batch_size"),
        max_in_flight=spec.get("max_in_flight", 1),
        max_reject_ratio=1.0,
    )
    if spec.get("die_after_first_batch"):
        real_send = operator.hook.send_batch

        def send_then_die(messages):
            real_send(messages)  # the gateway has stored them; the answer never reaches the ledger
            os.kill(os.getpid(), signal.SIGKILL)

        operator.hook.send_batch = send_then_die
    context = {
        "ti": SimpleNamespace(dag_id="reliability", task_id="send", try_number=1, map_index=-1),
        "logical_date": pendulum.datetime(2026, 11, 23, 9),
        "run_id": "manual__1",
        "ds": "2026-11-23",
        "params": {},
    }
    try:
        summary = operator.execute(context)
    except Exception as exc:
        print(json.dumps({"error": type(exc).__name__, "message": str(exc)}), flush=True)
        return 1
    print(json.dumps({"summary": summary}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
