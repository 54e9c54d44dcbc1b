"""Every example DAG runs end to end with ``airflow dags test`` against the sandbox gateway, and the
tables and the sandbox hold exactly what the seeded warehouse implies (scripts/run_example_dags.py).

This is the one slow test of the suite (five ``airflow dags test`` processes: about 3-4 minutes), so
that an example can never silently rot. ``SMS_SKIP_EXAMPLE_DAG_RUNS=1`` skips it for a quick local run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scripts.run_example_dags import DAG_ORDER, failures, run

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        os.environ.get("SMS_SKIP_EXAMPLE_DAG_RUNS") == "1", reason="SMS_SKIP_EXAMPLE_DAG_RUNS=1"
    ),
]


@pytest.mark.timeout(1800)  # a hung DAG must not hang CI; a normal run takes a few minutes
def test_every_example_dag_runs_with_airflow_dags_test_and_fills_the_tables(tmp_path: Path) -> None:
    example = run(tmp_path, customers=300)

    assert [r.dag_id for r in example.results] == list(DAG_ORDER)
    assert failures(example) == []
    # Each DAG contributed checks (no DAG's checks were skipped because it did not run).
    assert len(example.checks) == 22
