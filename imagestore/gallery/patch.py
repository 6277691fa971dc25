"""az's generic update on the resource JSON: set, add and remove by property path, and the
diff that tells which properties an update changed (so immutable ones can be refused by name).

The rules are az's (``azure.cli.core.commands.arm``): a path is ``a.b[0].c``; ``[key=value]``
picks the one list item whose ``key`` equals ``value``; ``properties.`` may be left out, as the
SDK models flatten it (``publishingProfile.excludeFromLatest`` is
``properties.publishingProfile.excludeFromLatest``); names match case-insensitively and take
the REST spelling; keys of a map (``tags.k``) are taken as written. Values are JSON when they
parse as JSON (``true``, ``5``, ``{"a": 1}``), else strings, unless ``force_string``. A path or
a key the resource's model does not have (see :mod:`.arm_shape`) is refused as unknown; what
may change is the service's business (:func:`diff`, :func:`under`).

Errors are :class:`PatchError` (``InvalidArgument``, exit 3) carrying the operation
(``set``/``add``/``remove``) so an interface can name its own flag, and the JSON path as
``target``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidArgument
from .arm_shape import ANY

OPERATIONS = ("set", "add", "remove")

log = logging.getLogger(__name__)


class PatchError(InvalidArgument):
    """A generic-update expression that cannot be applied to the resource JSON."""

    def __init__(self, operation: str, message: str, *, target: str | None = None) -> None:
        super().__init__(message, target=target)
        self.operation = operation


@dataclass(frozen=True)
class Op:
    """One generic-update operation, as az takes them:

    - ``Op("set", ("a.b=1", "tags.k=v"))``: each argument is ``PATH=VALUE``;
    - ``Op("add", ("a.list", "k=v", "k2=v2", '{"k": 1}'))``: append to the list at the path;
      consecutive ``key=value`` arguments make one object, other arguments are one item each;
    - ``Op("remove", ("a.b",))`` removes a property or map key, ``Op("remove", ("a.list", "1"))``
      the list item at an index.
    """

    kind: str
    args: tuple[str, ...]
    force_string: bool = False

    def __post_init__(self) -> None:
        if self.kind not in OPERATIONS:
            raise ValueError(f"unknown operation {self.kind!r}")


# -- paths -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Key:
    name: str


@dataclass(frozen=True)
class _Index:
    index: int


@dataclass(frozen=True)
class _Match:
    key: str
    value: Any
    text: str


_Step = _Key | _Index | _Match

_NAME = re.compile(r"[^.\[\]]+")
_BRACKET = re.compile(r"\[([^\]]*)\]")


def parse_path(path: str, operation: str = "set") -> list[_Step]:
    """``a.b[0].c[name=x]`` -> steps. Refuses empty segments and unclosed brackets."""
    steps: list[_Step] = []
    text = path.strip()
    pos = 0
    need_name = True  # at the start and after a dot a name must follow (or a bracket)

    def bad(why: str) -> PatchError:
        return PatchError(operation, f"'{path}' is not a property path ({why}; e.g. "
                                     "publishingProfile.targetRegions[0].name)")

    if not text:
        raise PatchError(operation, "empty property path")
    while pos < len(text):
        c = text[pos]
        if c == ".":
            if need_name:
                raise bad("empty name")
            need_name = True
            pos += 1
            continue
        if c == "[":
            m = _BRACKET.match(text, pos)
            if not m:
                raise bad("unclosed '['")
            inner = m.group(1).strip()
            if "=" in inner:
                k, _, v = inner.partition("=")
                if not k.strip():
                    raise bad("empty key in [key=value]")
                steps.append(_Match(k.strip(), _json_or_text(v.strip(), False), inner))
            else:
                try:
                    steps.append(_Index(int(inner)))
                except ValueError:
                    raise bad(f"'[{inner}]' is neither an index nor [key=value]") from None
            need_name = False
            pos = m.end()
            continue
        m = _NAME.match(text, pos)
        if not m or (not need_name):
            raise bad(f"unexpected '{c}'")
        steps.append(_Key(m.group(0).strip()))
        need_name = False
        pos = m.end()
    if need_name:
        raise bad("empty name")
    return steps


def _fmt(steps: Iterable[_Step]) -> str:
    out = ""
    for s in steps:
        if isinstance(s, _Key):
            out += ("." if out else "") + s.name
        elif isinstance(s, _Index):
            out += f"[{s.index}]"
        else:
            out += f"[{s.text}]"
    return out


def _json_or_text(text: str, force_string: bool) -> Any:
    if force_string:
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def _shape_key(shape: dict, name: str) -> str | None:
    """The REST spelling of ``name`` in an object shape (case-insensitive), or None."""
    if name in shape:
        return name
    low = name.lower()
    for k in shape:
        if k.lower() == low:
            return k
    return None


def _is_map(shape: Any) -> bool:
    return isinstance(shape, dict) and set(shape) == {"*"}


def _doc_key(d: dict, name: str) -> str:
    """An existing key of ``d`` matching ``name`` case-insensitively, else ``name``."""
    if name in d:
        return name
    for k in d:
        if k.lower() == name.lower():
            return k
    return name


@dataclass
class _Resolved:
    steps: list[_Step]  # canonical (REST spelling, properties. restored)
    shapes: list[Any]  # shape at each step's result (shapes[i] describes steps[: i + 1])


def _resolve(operation: str, path: str, root_shape: dict) -> _Resolved:
    steps = parse_path(path, operation)
    first = steps[0]
    if not isinstance(first, _Key):
        raise PatchError(operation, f"'{path}' must start with a property name")
    if _shape_key(root_shape, first.name) is None and isinstance(root_shape.get("properties"), dict):
        if _shape_key(root_shape["properties"], first.name) is not None:
            steps = [_Key("properties"), *steps]  # az's flattening of properties.
    out: list[_Step] = []
    shapes: list[Any] = []
    shape: Any = root_shape
    for step in steps:
        if shape is ANY:
            out.append(step)
            shapes.append(ANY)
            continue
        if isinstance(step, _Key):
            if _is_map(shape):
                out.append(step)  # a map key (tags.k) is taken as written
                shape = shape["*"]
            elif isinstance(shape, dict):
                k = _shape_key(shape, step.name)
                if k is None:
                    raise PatchError(operation, f"unknown property '{_fmt([*out, step])}'",
                                     target=_fmt([*out, step]))
                out.append(_Key(k))
                shape = shape[k]
            else:
                where = _fmt(out)
                raise PatchError(operation, f"unknown property '{_fmt([*out, step])}' "
                                            f"('{where}' has no properties)",
                                 target=_fmt([*out, step]))
        else:
            if not isinstance(shape, list):
                raise PatchError(operation, f"'{_fmt(out)}' is not a list, so "
                                            f"'{_fmt([step])}' cannot index it", target=_fmt(out))
            out.append(step)
            shape = shape[0]
        shapes.append(shape)
    return _Resolved(out, shapes)


def _check_value(operation: str, value: Any, shape: Any, where: list[_Step]) -> Any:
    """``value`` with its object keys in REST spelling; refuses keys the shape lacks."""
    if shape is ANY or value is None:
        return value
    if isinstance(value, dict) and isinstance(shape, dict):
        out = {}
        for k, v in value.items():
            if _is_map(shape):
                out[k] = _check_value(operation, v, shape["*"], [*where, _Key(k)])
                continue
            canon = _shape_key(shape, str(k))
            if canon is None:
                t = _fmt([*where, _Key(str(k))])
                raise PatchError(operation, f"unknown property '{t}'", target=t)
            out[canon] = _check_value(operation, v, shape[canon], [*where, _Key(canon)])
        return out
    if isinstance(value, list) and isinstance(shape, list):
        return [_check_value(operation, v, shape[0], [*where, _Index(i)])
                for i, v in enumerate(value)]
    return value  # a type mismatch is the service's to report, with the field's own rules


# -- walking the document --------------------------------------------------------------------


def _step_into(operation: str, cur: Any, step: _Step, done: list[_Step], *, create: Any = None) -> Any:
    """The child of ``cur`` at ``step``; a missing object property is created as ``create()``
    when given (az creates missing parents), else None."""
    if isinstance(step, _Key):
        if not isinstance(cur, dict):
            raise PatchError(operation, f"'{_fmt(done)}' is not an object", target=_fmt(done))
        k = _doc_key(cur, step.name)
        if cur.get(k) is None:
            if create is None:
                return None
            cur[k] = create()
        return cur[k]
    if not isinstance(cur, list):
        raise PatchError(operation, f"'{_fmt(done)}' is not a list", target=_fmt(done))
    if isinstance(step, _Index):
        if not -len(cur) <= step.index < len(cur):
            raise PatchError(operation, f"index [{step.index}] out of range in '{_fmt(done)}' "
                                        f"({len(cur)} item(s))", target=_fmt(done))
        return cur[step.index]
    return cur[_match_index(operation, cur, step, done)]


def _match_index(operation: str, items: list, step: _Match, done: list[_Step]) -> int:
    def eq(a: Any, b: Any) -> bool:
        if isinstance(a, str) and isinstance(b, str):
            return a.lower() == b.lower()
        return a == b

    hits = [i for i, x in enumerate(items)
            if isinstance(x, dict) and eq(x.get(_doc_key(x, step.key)), step.value)]
    if not hits:
        raise PatchError(operation, f"no item of '{_fmt(done)}' has {step.text}", target=_fmt(done))
    if len(hits) > 1:
        raise PatchError(operation, f"{len(hits)} items of '{_fmt(done)}' have {step.text}; "
                                    "the key must be unique", target=_fmt(done))
    return hits[0]


def _parent(operation: str, doc: dict, res: _Resolved, *, create: bool) -> Any:
    """The container holding the last step (missing objects created when ``create``)."""
    cur: Any = doc
    steps = res.steps
    for i, step in enumerate(steps[:-1]):
        nxt = steps[i + 1]
        make = (list if not isinstance(nxt, _Key) else dict) if create else None
        cur = _step_into(operation, cur, step, steps[:i], create=make)
        if cur is None:
            return None
    return cur


def _slot(operation: str, parent: Any, step: _Step, done: list[_Step]) -> str | int:
    """The key or index of ``step`` in ``parent`` (which must be able to hold it)."""
    if isinstance(step, _Key):
        if not isinstance(parent, dict):
            raise PatchError(operation, f"'{_fmt(done)}' is not an object", target=_fmt(done))
        return _doc_key(parent, step.name)
    if not isinstance(parent, list):
        raise PatchError(operation, f"'{_fmt(done)}' is not a list", target=_fmt(done))
    if isinstance(step, _Index):
        if not -len(parent) <= step.index < len(parent):
            raise PatchError(operation, f"index [{step.index}] out of range in '{_fmt(done)}' "
                                        f"({len(parent)} item(s))", target=_fmt(done))
        return step.index
    return _match_index(operation, parent, step, done)


# -- the three operations --------------------------------------------------------------------


def split_assignment(expr: str, operation: str = "set") -> tuple[str, str]:
    """``PATH=VALUE`` split at the first ``=`` outside brackets (``a[name=x].b=1``)."""
    depth = 0
    for i, c in enumerate(expr):
        if c == "[":
            depth += 1
        elif c == "]":
            depth = max(0, depth - 1)
        elif c == "=" and depth == 0:
            if not expr[:i].strip():
                raise PatchError(operation, f"'{expr}' has an empty path (PATH=VALUE)")
            return expr[:i], expr[i + 1:]
    raise PatchError(operation, f"'{expr}' is not PATH=VALUE")


def set_property(doc: dict, expr: str, shape: dict, *, force_string: bool = False) -> None:
    """az ``--set PATH=VALUE``. A JSON ``null`` removes the property."""
    path, raw = split_assignment(expr, "set")
    res = _resolve("set", path, shape)
    value = _check_value("set", _json_or_text(raw, force_string), res.shapes[-1], res.steps)
    parent = _parent("set", doc, res, create=True)
    slot = _slot("set", parent, res.steps[-1], res.steps[:-1])
    if value is None and isinstance(parent, dict):
        parent.pop(slot, None)
    else:
        parent[slot] = value


def add_items(doc: dict, args: tuple[str, ...] | list[str], shape: dict, *,
              force_string: bool = False) -> None:
    """az ``--add PATH ITEM...``: append to the list at PATH (created when absent)."""
    if len(args) < 2:
        raise PatchError("add", f"'{' '.join(args)}' needs a list path and at least one item "
                                "(key=value pairs or JSON)")
    res = _resolve("add", args[0], shape)
    target = _fmt(res.steps)
    if res.shapes[-1] is not ANY and not isinstance(res.shapes[-1], list):
        raise PatchError("add", f"'{target}' is not a list (set its properties instead)",
                         target=target)
    items: list[Any] = []
    entry: dict[str, Any] = {}
    for a in args[1:]:
        key, eq, val = a.partition("=")
        if eq and key.strip() and not a.lstrip().startswith(("{", "[", '"')):
            entry[key.strip()] = _json_or_text(val, force_string)
            continue
        if entry:
            items.append(entry)
            entry = {}
        items.append(_json_or_text(a, force_string))
    if entry:
        items.append(entry)
    parent = _parent("add", doc, res, create=True)
    slot = _slot("add", parent, res.steps[-1], res.steps[:-1])
    if isinstance(slot, str) and parent.get(slot) is None:
        parent[slot] = []
    lst = parent[slot]
    if not isinstance(lst, list):
        raise PatchError("add", f"'{target}' is not a list", target=target)
    item_shape = res.shapes[-1][0] if isinstance(res.shapes[-1], list) else ANY
    for n, item in enumerate(items):
        lst.append(_check_value("add", item, item_shape, [*res.steps, _Index(len(lst) + n)]))


def remove_property(doc: dict, args: tuple[str, ...] | list[str], shape: dict) -> None:
    """az ``--remove PATH`` (a property or map key) or ``--remove LIST_PATH INDEX``."""
    if not args or len(args) > 2:
        raise PatchError("remove", f"'{' '.join(args)}' is not PATH or LIST_PATH INDEX")
    res = _resolve("remove", args[0], shape)
    steps = res.steps
    if len(args) == 2:
        try:
            idx = int(args[1])
        except ValueError:
            raise PatchError("remove", f"'{args[1]}' is not a list index") from None
        if res.shapes[-1] is not ANY and not isinstance(res.shapes[-1], list):
            raise PatchError("remove", f"'{_fmt(steps)}' is not a list", target=_fmt(steps))
        steps = [*steps, _Index(idx)]
        res = _Resolved(steps, [*res.shapes, None])
    parent = _parent("remove", doc, res, create=False)
    target = _fmt(steps)
    in_map = len(res.shapes) >= 2 and _is_map(res.shapes[-2])
    if parent is None:
        if in_map:
            raise PatchError("remove", f"'{target}' does not exist", target=target)
        return  # a known property that is not set: nothing to remove (as on the SDK object)
    slot = _slot("remove", parent, steps[-1], steps[:-1])
    if isinstance(parent, list):
        parent.pop(slot)
    elif slot in parent:
        del parent[slot]
    elif in_map:
        raise PatchError("remove", f"'{target}' does not exist", target=target)


def apply(doc: dict, ops: Iterable[Op | str], shape: dict) -> dict:
    """Apply operations in order to ``doc`` (changed in place and returned). A plain string
    is a ``set`` expression."""
    for op in ops:
        if isinstance(op, str):
            op = Op("set", (op,))
        log.debug("%s %s%s", op.kind, " ".join(op.args),
                  " (strings kept)" if op.force_string else "")
        if op.kind == "set":
            if not op.args:
                raise PatchError("set", "needs PATH=VALUE")
            for expr in op.args:
                set_property(doc, expr, shape, force_string=op.force_string)
        elif op.kind == "add":
            add_items(doc, op.args, shape, force_string=op.force_string)
        else:
            remove_property(doc, op.args, shape)
    return doc


# -- what changed ----------------------------------------------------------------------------


def diff(a: Any, b: Any, path: str = "") -> list[str]:
    """Paths (as in the JSON output) whose values differ between a and b. Lists of different
    lengths differ as a whole."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for k in list(a) + [k for k in b if k not in a]:
            sub = f"{path}.{k}" if path else k
            if k not in a or k not in b:
                if a.get(k) != b.get(k):
                    out.append(sub)
            else:
                out += diff(a[k], b[k], sub)
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        out = []
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            out += diff(x, y, f"{path}[{i}]")
        return out
    return [] if a == b else [path]


def under(path: str, prefixes: tuple[str, ...]) -> bool:
    """Is ``path`` one of ``prefixes`` or inside one (case-insensitive)?"""
    pl = path.lower()
    for p in prefixes:
        p = p.lower()
        if pl == p or pl.startswith(p + ".") or pl.startswith(p + "["):
            return True
    return False
