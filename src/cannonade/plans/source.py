"""A YAML file read into plain values, with where each value and key was written.

PyYAML's composer keeps a mark (line, column) on every node; the values are built from
the nodes here so that every later error can name ``file:line:column``. Duplicate keys,
which PyYAML's loader silently lets the last one win, are errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

Path = tuple[str | int, ...]


@dataclass(frozen=True, slots=True, order=True)
class Problem:
    """One thing wrong with a plan, where it is."""

    line: int
    column: int
    message: str
    file: str = field(default="", compare=False)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


@dataclass(slots=True)
class Marks:
    """Where each path's value (and, for mapping entries, its key) starts."""

    file: str
    values: dict[Path, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path, tuple[int, int]] = field(default_factory=dict)

    def at(self, path: Path, message: str, *, key: bool = False) -> Problem:
        """A problem at ``path`` (its key when ``key``), or at the nearest parent known."""
        table = self.keys if key else self.values
        p = path
        while p and p not in table and p not in self.values:
            p = p[:-1]
        line, column = table.get(p) or self.values.get(p) or (1, 1)
        return Problem(line, column, message, self.file)


class SourceError(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


def load_yaml(text: str, file: str) -> tuple[Any, Marks]:
    """The document's values and their marks. Raises SourceError for YAML that does not
    parse, duplicate keys, or more than one document."""
    marks = Marks(file)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        raise SourceError([Problem(line, col, f"not valid YAML: {e.problem}", file)]) from None
    except yaml.YAMLError as e:
        raise SourceError([Problem(1, 1, f"not valid YAML: {e}", file)]) from None
    if node is None:
        return None, marks
    problems: list[Problem] = []
    value = _Builder(marks, problems).build(node, ())
    if problems:
        raise SourceError(problems)
    return value, marks


class _Builder:
    def __init__(self, marks: Marks, problems: list[Problem]) -> None:
        self.marks = marks
        self.problems = problems
        self.constructor = SafeConstructor()

    def build(self, node: Node, path: Path) -> Any:
        self.marks.values[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, MappingNode):
            return self._mapping(node, path)
        if isinstance(node, SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        try:
            return self.constructor.construct_object(node, deep=True)
        except ConstructorError as e:
            self._problem(node, f"cannot read this value: {e.problem}")
            return None

    def _mapping(self, node: MappingNode, path: Path) -> dict[str, Any]:
        try:
            self.constructor.flatten_mapping(node)  # YAML merge keys (<<)
        except ConstructorError as e:
            self._problem(node, f"cannot merge: {e.problem}")
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                self._problem(key_node, "a key must be a plain text value")
                continue
            key = self.constructor.construct_object(key_node)
            if not isinstance(key, str):
                key = str(key)  # `200: ...` or `true: ...`: names are text
            child = (*path, key)
            self.marks.keys[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            if key in out:
                self._problem(key_node, f"duplicate key {key!r}")
                continue
            out[key] = self.build(value_node, child)
        return out

    def _problem(self, node: Node, message: str) -> None:
        mark = node.start_mark
        self.problems.append(Problem(mark.line + 1, mark.column + 1, message, self.marks.file))
