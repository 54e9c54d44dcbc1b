"""Per-recipient message templates: Jinja in a sandbox, strict about unknown columns."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
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

    def render(self, row: Mapping[str, Any]) -> str:
        """The text for ``row`` (only the names the template uses are read from it)."""
        values = {name: row[name] for name in self._names if name in row}
        if self._cache is None:
            return self._render(values)
        # The type is part of the key: 1, 1.0 and True are equal but render differently.
        key = tuple((name, type(value), value) for name, value in values.items())
        try:
            return self._cache[key]
        except KeyError:
            pass
        except TypeError:  # an unhashable value (a list, a dict): render without the cache
            return self._render(values)
        body = self._render(values)
        if len(self._cache) >= self.CACHE_SIZE:
            self._cache.clear()
        self._cache[key] = body
        return body

    def _render(self, values: Mapping[str, Any]) -> str:
        try:
            return self._template.render({**self.constants, **values}).strip()
        except Exception as exc:  # a filter or expression failing on this row's values
            raise MessageTemplateError(f"message template failed: {exc}") from None
