"""Where the provider's time goes: a pyinstrument profile of one run, folded to the provider's frames.

pyinstrument is optional (``pip install pyinstrument``); without it ``--profile`` says so and the
benchmark still prints its own time split.
"""

from __future__ import annotations

import re
from typing import Any

# Frames worth a line in the summary: the provider's own code and the libraries it spends time in.
INTERESTING = re.compile(
    r"airflow_provider_sms/|phonenumbers/phonenumberutil.py:\d+ *$|jinja2/environment.py|"
    r"pandas/core/frame.py|requests/sessions.py|sqlite3|psycopg2|common/sql/hooks"
)


def profiler() -> Any | None:
    """A pyinstrument Profiler, or None when pyinstrument is not installed."""
    try:
        from pyinstrument import Profiler
    except ImportError:
        return None
    return Profiler(interval=0.001)


def summary(profile: Any, top: int = 25) -> str:
    """Inclusive wall time per function (the provider's own and the libraries it spends time in),
    summed over every call site, largest first: one line per function, not one per call path."""
    session = profile.last_session
    root = session.root_frame()
    if root is None:
        return "(empty profile)"
    total = root.time or 1e-9
    spent: dict[str, float] = {}

    def walk(frame, on_stack: frozenset[str]) -> None:
        name = f"{frame.function}  {_short(frame.file_path_short or '')}:{frame.line_no}"
        if name not in on_stack:  # recursion and re-entry count once
            spent[name] = spent.get(name, 0.0) + frame.time
        inner = on_stack | {name}
        for child in frame.children:
            walk(child, inner)

    walk(root, frozenset())
    rows = sorted(
        ((t, name) for name, t in spent.items() if INTERESTING.search(name) and t / total >= 0.01),
        reverse=True,
    )[:top]
    return "\n".join(f"{t / total * 100:5.1f} %  {t:7.2f} s  {name}" for t, name in rows)


def _short(path: str) -> str:
    for marker in ("site-packages/", "airflow_provider_sms/"):
        if marker in path:
            head = "airflow_provider_sms/" if marker == "airflow_provider_sms/" else ""
            return head + path.split(marker, 1)[1]
    return path
