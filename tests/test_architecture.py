"""The layout's rules (docs/architecture.md), checked on the code: every import points down, the
campaign engines know nothing of Airflow, and only storage/ writes SQL."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "airflow_provider_sms"
MODEL = {"messages", "phones", "exceptions"}
FACES = {"operators", "sensors", "triggers", "notifications"}
# What each part may import of the provider (besides itself).
ALLOWED = {
    "phones": set(),
    "messages": {"phones"},
    "exceptions": set(),
    "get_provider_info": {"__init__"},
    "hooks": MODEL | {"get_provider_info", "__init__"},
    "storage": MODEL,
    "campaign": MODEL | {"hooks", "storage"},
    "sandbox": {"messages", "phones"},
    "operators": MODEL | {"hooks", "storage", "campaign"},
    "sensors": MODEL | {"hooks", "storage", "campaign", "triggers"},
    "triggers": MODEL | {"hooks", "storage", "campaign"},
    "notifications": MODEL | {"hooks"},
    # The UI face: reads storage (never hooks or engines); its config is declared in provider info.
    "plugins": MODEL | {"storage", "get_provider_info"},
    "__init__": set(),
}
SQL = re.compile(
    r"\b(SELECT\s.+\sFROM|INSERT\s+INTO|UPDATE\s+\S+\s+(AS\s+\w+\s+)?SET|DELETE\s+FROM|CREATE\s+(TEMP\s+)?(TABLE|INDEX))\b",
    re.I | re.S,
)


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def part_of(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0].removesuffix(".py")


def provider_imports(path: Path) -> set[str]:
    """The parts of the provider ``path`` imports (absolute or relative, at any depth)."""
    tree = ast.parse(path.read_text())
    package = path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1]
    found = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                names = [".".join([*base, *(node.module.split(".") if node.module else [])])]
            else:
                names = [node.module or ""]
            if names[0] == "airflow_provider_sms":  # from airflow_provider_sms import x (a module or a name)
                names = [
                    f"airflow_provider_sms.{alias.name}"
                    if (PACKAGE / alias.name).is_dir() or (PACKAGE / f"{alias.name}.py").exists()
                    else "airflow_provider_sms"
                    for alias in node.names
                ]
        for name in names:
            parts = name.split(".")
            if parts[0] == "airflow_provider_sms":
                found.add(parts[1] if len(parts) > 1 else "__init__")
    return found


def airflow_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "airflow"}
        elif (
            isinstance(node, ast.ImportFrom)
            and not node.level
            and (node.module or "").split(".")[0] == "airflow"
        ):
            found.add(node.module)
    return found


def sql_literals(path: Path) -> list[str]:
    """String literals (docstrings aside) that hold SQL."""
    tree = ast.parse(path.read_text())
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    texts = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            parts = [v for v in node.values if isinstance(v, ast.Constant)]
            docstrings |= {id(v) for v in parts}  # read as one text here, not again as pieces
            texts.append("".join(v.value for v in parts))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            texts.append(node.value)
    return [t for t in texts if SQL.search(t)]


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path):
    part = part_of(path)
    assert part in ALLOWED, f"{path.relative_to(PACKAGE)} belongs to no part of docs/architecture.md"
    wrong = provider_imports(path) - ALLOWED[part] - {part}
    assert not wrong, f"{part} may not import {sorted(wrong)} ({path.relative_to(PACKAGE)})"


@pytest.mark.parametrize("path", sorted((PACKAGE / "campaign").rglob("*.py")), ids=lambda p: p.name)
def test_campaign_engines_know_nothing_of_airflow(path):
    assert airflow_imports(path) == set()


@pytest.mark.parametrize(
    "path",
    [p for p in modules() if part_of(p) not in ("storage", "sandbox")],
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_only_storage_writes_sql(path):
    assert sql_literals(path) == []


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*/*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_airflow_faces_are_thin(path):
    if part_of(path) in FACES:
        assert len(path.read_text().splitlines()) < 250, (
            "an operator, sensor, trigger or notifier holds an engine"
        )


def test_the_rules_catch_a_wrong_import(tmp_path):
    """The checker itself: an upward import and SQL in a hook are found."""
    bad = PACKAGE / "hooks" / "_architecture_probe.py"
    try:
        bad.write_text(
            "from airflow_provider_sms.storage.ledger import MessageLedger\n"
            "QUERY = f'SELECT x FROM {MessageLedger}'\n"
        )
        assert provider_imports(bad) == {"storage"}
        assert sql_literals(bad) == ["SELECT x FROM "]
    finally:
        bad.unlink()


PUBLIC = {
    "airflow_provider_sms.operators.send",
    "airflow_provider_sms.operators.contacts",
    "airflow_provider_sms.operators.newsletter",
    "airflow_provider_sms.operators.report",
    "airflow_provider_sms.operators.replies",
    "airflow_provider_sms.sensors.delivery",
    "airflow_provider_sms.notifications.sms",
    "airflow_provider_sms.messages",
    "airflow_provider_sms.exceptions",
}


@pytest.mark.parametrize("path", sorted((PACKAGE.parent / "example_dags").glob("*.py")), ids=lambda p: p.name)
def test_example_dags_import_only_public_names(path):
    tree = ast.parse(path.read_text())
    used = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("airflow_provider_sms"):
            used.add(node.module)
        elif isinstance(node, ast.Import):
            used |= {a.name for a in node.names if a.name.startswith("airflow_provider_sms")}
    assert used <= PUBLIC, f"internal modules: {sorted(used - PUBLIC)}"
