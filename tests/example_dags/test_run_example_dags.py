"""Every example DAG runs end to end with ``airflow dags test`` against the sandbox gateway, and the
tables and the sandbox hold exactly what the seeded warehouse implies (scripts/run_example_dags.py).

This is the one slow test of the suite (six ``airflow dags test`` processes: about 3-4 minutes per
audience), so that an example can never silently rot. It runs the README's audience (300 customers)
and a larger one (2000): the campaign's budget, the opt-outs shared between customers and the
report's arithmetic must hold for more than one size. ``SMS_SKIP_EXAMPLE_DAG_RUNS=1`` skips it for a quick local run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scripts.run_example_dags import DAG_ORDER, failures, planned_checks, run

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        os.environ.get("SMS_SKIP_EXAMPLE_DAG_RUNS") == "1", reason="SMS_SKIP_EXAMPLE_DAG_RUNS=1"
    ),
]


@pytest.mark.timeout(1800)  # a hung DAG must not hang CI; a normal run takes a few minutes
@pytest.mark.parametrize("customers", [300, 2000])
def test_every_example_dag_runs_with_airflow_dags_test_and_fills_the_tables(
    tmp_path: Path, customers: int, request: pytest.FixtureRequest
) -> None:
    # The README's audience is the session's shared run (the UI's tests look at it too).
    example = (
        request.getfixturevalue("example_dags_run")
        if customers == 300
        else run(tmp_path, customers=customers)
    )

    assert [r.dag_id for r in example.results] == list(DAG_ORDER)
    assert failures(example) == []
    # Every planned check ran and passed (none skipped, none dropped).
    planned = [name for names in planned_checks().values() for name in names]
    assert sorted(c.name for c in example.checks) == sorted(planned)
    assert {c.status for c in example.checks} == {"passed"}
    assert "no opted-out number received any message, from any DAG" in planned
    # Each task's log is where the UI reads it.
    logs = list((example.workdir / "airflow" / "logs").glob("dag_id=*/run_id=*/task_id=*/**/attempt=1.log"))
    assert len(logs) >= 20, logs
