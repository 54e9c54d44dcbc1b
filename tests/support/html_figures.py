"""The figures a campaigns page shows, read from its HTML: every element with ``data-field`` inside
an element with ``data-campaign-key`` (a table row or a block of cards), its own text only."""

from __future__ import annotations

from html.parser import HTMLParser

VOID = {"br", "img", "input", "meta", "link", "hr"}


class _Figures(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: dict[str, dict[str, str]] = {}
        self.stack: list[tuple[str, str | None, str | None]] = []  # (tag, campaign key, field)
        self.text: list[str] = []

    def _key(self) -> str | None:
        return next((key for _, key, _ in reversed(self.stack) if key), None)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in VOID:
            return
        a = dict(attrs)
        self.stack.append((tag, a.get("data-campaign-key"), a.get("data-field")))
        if a.get("data-field"):
            self.text = []

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID or not self.stack:
            return
        while self.stack:
            open_tag, _, field = self.stack.pop()
            if field:
                key = self._key()
                if key is not None:
                    self.found.setdefault(key, {})[field] = "".join(self.text).strip()
            if open_tag == tag:
                break

    def handle_data(self, data: str) -> None:
        if self.stack and self.stack[-1][2]:  # directly inside the figure, not in a nested element
            self.text.append(data)


def figures(html: str) -> dict[str, dict[str, str]]:
    """``{campaign key: {field: text}}``; a key shown twice (table and cards) merges."""
    parser = _Figures()
    parser.feed(html)
    return parser.found


def number(value: int | None) -> str:
    return "\u2013" if value is None else f"{value:,}"


def rate(value: float | None) -> str:
    return "\u2013" if value is None else f"{value:.1%}"


def cost(value: float | None) -> str:
    return "\u2013" if value is None else f"{value:,.2f}"


def shown(expected: dict) -> dict[str, str]:
    """How a page writes the figures of ``expected`` (one campaign of ``expected_campaigns``)."""
    fields = ("recipients", "accepted", "rejected", "suppressed", "delivered", "undelivered", "failed",
              "pending", "segments")  # fmt: skip
    out = {f: number(expected[f]) for f in fields}
    out["delivery_rate"] = rate(expected["delivery_rate"])
    out["estimated_cost"] = cost(expected["estimated_cost"])
    return out
