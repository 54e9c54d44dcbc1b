"""Knobs of the reliability suite: how many seeded fault runs and how many generated inputs.

CI runs the defaults (short). A soak raises them, either on the command line (the options exist
when pytest is pointed at this folder, so that this conftest is loaded at start-up)::

    scripts/test.sh tests/reliability --runs 200 --examples 2000

or through environment variables, which work however pytest is started::

    SMS_RELIABILITY_RUNS=200 SMS_RELIABILITY_EXAMPLES=2000 scripts/test.sh tests/reliability

``SMS_RELIABILITY_SEED`` shifts every seed (default 0: the same runs every time);
``SMS_RELIABILITY_REPORT=path.json`` writes one line of facts per fault run;
``SMS_RELIABILITY_LEDGER=postgres`` (or ``sqlite``) puts every fault run's ledger there (default:
one run in four on PostgreSQL).
"""

from __future__ import annotations

import json
import os
from collections import Counter

import pytest

DEFAULT_RUNS = 20
DEFAULT_EXAMPLES = 150


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("sms-reliability", "airflow-provider-sms reliability suite")
    group.addoption(
        "--runs",
        type=int,
        default=None,
        help=f"seeded fault runs (default {DEFAULT_RUNS}, or SMS_RELIABILITY_RUNS)",
    )
    group.addoption(
        "--examples",
        type=int,
        default=None,
        help=f"hypothesis examples per property (default {DEFAULT_EXAMPLES}, or SMS_RELIABILITY_EXAMPLES)",
    )


def _knob(config: pytest.Config, option: str, variable: str, default: int) -> int:
    # getoption with a default: when pytest was started on the whole tests/ folder, this conftest is
    # loaded after the command line was parsed and the options do not exist; the env var still works.
    value = config.getoption(option, default=None)
    if value is None:
        value = os.environ.get(variable)
    return int(value) if value not in (None, "") else default


def reliability_runs(config: pytest.Config) -> int:
    return _knob(config, "runs", "SMS_RELIABILITY_RUNS", DEFAULT_RUNS)


def reliability_examples(config: pytest.Config) -> int:
    return _knob(config, "examples", "SMS_RELIABILITY_EXAMPLES", DEFAULT_EXAMPLES)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``run_seed``: one test per seeded fault run."""
    if "run_seed" in metafunc.fixturenames:
        base = int(os.environ.get("SMS_RELIABILITY_SEED", "0"))
        runs = reliability_runs(metafunc.config)
        metafunc.parametrize(
            "run_seed", [base + i for i in range(runs)], ids=[f"seed{base + i}" for i in range(runs)]
        )


@pytest.fixture(scope="session")
def examples(pytestconfig: pytest.Config) -> int:
    """Generated cases per property test."""
    return reliability_examples(pytestconfig)


_RUN_FACTS: list[dict] = []


@pytest.fixture(scope="session")
def run_facts() -> list[dict]:
    """Where each fault run leaves its facts, for the summary at the end of the session."""
    return _RUN_FACTS


_PROPERTY_OUTCOMES: dict[str, Counter] = {}


@pytest.fixture(scope="session")
def property_outcomes() -> dict[str, Counter]:
    """How the generated cases of each property test ended."""
    return _PROPERTY_OUTCOMES


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if _PROPERTY_OUTCOMES:
        terminalreporter.section("sms reliability: generated bad input")
        total = sum(sum(c.values()) for c in _PROPERTY_OUTCOMES.values())
        terminalreporter.write_line(f"{total} generated cases in {len(_PROPERTY_OUTCOMES)} property tests")
        for name, outcomes in _PROPERTY_OUTCOMES.items():
            line = ", ".join(f"{kind} {count}" for kind, count in outcomes.most_common())
            terminalreporter.write_line(f"  {name}: {line}")
    if not _RUN_FACTS:
        return
    runs = len(_RUN_FACTS)
    total = {
        key: sum(f[key] for f in _RUN_FACTS)
        for key in (
            "recipients",
            "tries",
            "accepted",
            "ambiguous_after_success",
            "ambiguous",
            "ambiguous_sent",
            "duplicates",
            "lost",
            "misreported",
        )
    }
    injected: dict[str, int] = {}
    for facts in _RUN_FACTS:
        for kind, count in facts["injected"].items():
            injected[kind] = injected.get(kind, 0) + count
    kills = sum(1 for f in _RUN_FACTS if f["killed"])
    terminalreporter.section("sms reliability: fault runs")
    terminalreporter.write_line(
        f"{runs} runs, {total['recipients']} recipients, {total['tries']} task tries, {kills} SIGKILLs; "
        f"accepted {total['accepted']}; ambiguous at the end {total['ambiguous']}, of which held by the "
        f"gateway {total['ambiguous_sent']} (ambiguous right after the first successful try "
        f"{total['ambiguous_after_success']}); "
        f"duplicates {total['duplicates']}, lost {total['lost']}, misreported {total['misreported']}"
    )
    terminalreporter.write_line("faults injected by the sandbox: " + json.dumps(injected, sort_keys=True))
    in_flight = Counter(f.get("in_flight", 1) for f in _RUN_FACTS)
    terminalreporter.write_line(
        "runs per max_in_flight: " + ", ".join(f"{n}: {in_flight[n]}" for n in sorted(in_flight))
    )
    path = os.environ.get("SMS_RELIABILITY_REPORT")
    if path:
        with open(path, "w") as out:
            for facts in _RUN_FACTS:
                out.write(json.dumps(facts, sort_keys=True) + "\n")
        terminalreporter.write_line(f"per-run facts written to {path}")
