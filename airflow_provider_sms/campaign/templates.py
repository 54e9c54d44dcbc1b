"""Per-recipient message templates: Jinja in a sandbox, strict about unknown columns."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, meta, nodes
from jinja2.sandbox import SandboxedEnvironment


class MessageTemplateError(ValueError):
    """A message template that cannot render: bad syntax or a column the input does not have."""


class MessageTemplate:
    """``Hello {{ first_name }}``, rendered once per row with the row's columns.

    :param source: the template text.
    :param constants: names available to every row (``campaign_key``, ``ds``, ``params``...).
    """

    _env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)
    # Renders are cached per distinct values of the names the template uses (a campaign usually has
    # few distinct texts); bounded, and off for templates that are not a function of their inputs.
    CACHE_SIZE = 10_000
    _IMPURE = frozenset({"random", "lipsum", "cycler", "joiner", "namespace"})

    def __init__(self, source: str, constants: Mapping[str, Any] | None = None) -> None:
        if not isinstance(source, str) or not source.strip():
            raise MessageTemplateError("the message template is empty")
        try:
            tree = self._env.parse(source)
            self.variables = meta.find_undeclared_variables(tree)
            self._template = self._env.from_string(source)
        except TemplateSyntaxError as exc:
            raise MessageTemplateError(
                f"message template syntax error on line {exc.lineno}: {exc.message}"
            ) from None
        self.constants = dict(constants or {})
        self._names = tuple(sorted(self.variables))
        # Which of those names each template line reads: a failure names the ones on its line.
        self._lines: defaultdict[int, set[str]] = defaultdict(set)
        for node in tree.find_all(nodes.Name):
            if node.name in self.variables:
                self._lines[node.lineno].add(node.name)
        self._cache: dict[tuple[Any, ...], str] | None = None if self._impure(tree) else {}

    @classmethod
    def _impure(cls, tree: nodes.Template) -> bool:
        used = {n.name for n in tree.find_all((nodes.Filter, nodes.Name))}
        return bool(used & cls._IMPURE)

    def check_columns(self, columns: Iterable[str]) -> None:
        """Raise before anything is sent if the template uses a name the rows will not have."""
        missing = sorted(self.variables - set(columns) - set(self.constants))
        if missing:
            raise MessageTemplateError(
                f"the message template uses {', '.join(map(repr, missing))}, which the input does not have "
                f"(columns: {', '.join(sorted(c for c in columns if c != '_row'))})"
            )

    def render(self, row: Mapping[str, Any], *, position: int | None = None) -> str:
        """The text for ``row`` (only the names the template uses are read from it); ``position``
        (the row's place in the input, its ``source_row``) is named should the row fail to render."""
        values = {name: row[name] for name in self._names if name in row}
        if self._cache is None:
            return self._render(values, position)
        # The type is part of the key: 1, 1.0 and True are equal but render differently.
        key = tuple((name, type(value), value) for name, value in values.items())
        try:
            return self._cache[key]
        except KeyError:
            pass
        except TypeError:  # an unhashable value (a list, a dict): render without the cache
            return self._render(values, position)
        body = self._render(values, position)
        if len(self._cache) >= self.CACHE_SIZE:
            self._cache.clear()
        self._cache[key] = body
        return body

    def _render(self, values: Mapping[str, Any], position: int | None = None) -> str:
        try:
            return self._template.render({**self.constants, **values}).strip()
        except Exception as exc:  # a filter or expression failing on this row's values
            raise MessageTemplateError(self._failure(exc, values, position)) from None

    def _failure(self, exc: Exception, values: Mapping[str, Any], position: int | None) -> str:
        """Which row, which template line and which of its columns (by type: a value may be a
        phone number or a name, which do not belong in a log)."""
        line = _template_line(exc.__traceback__)
        names = sorted(self._lines.get(line, ())) if line else []
        where = "message template failed" + (f" on input row {position}" if position is not None else "")
        where += f" (template line {line})" if line else ""
        used = ", ".join(
            f"{n} ({type(values[n]).__name__})" if n in values else f"{n} (constant)" for n in names
        )
        return f"{where}: {type(exc).__name__}: {exc}" + (f"; on that line: {used}" if used else "")


def _template_line(tb: TracebackType | None) -> int | None:
    """The template line an error was raised on: Jinja rewrites its frames to ``<template>``."""
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line
