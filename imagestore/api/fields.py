"""Reading a request body: typed fields by JSON path (a wrong type is InvalidParameter naming
the field), and a body turned into the generic-update operations the services take, so a
PATCH (or a PUT on an existing resource) follows exactly the CLI's rules of what may change."""

from __future__ import annotations

import json
from typing import Any

from ..errors import InvalidArgument
from ..gallery import patch

_MISSING = object()
_TYPES = {str: "a string", bool: "a boolean", int: "an integer", dict: "an object",
          list: "an array"}


class Body:
    """A JSON object body."""

    def __init__(self, data: dict) -> None:
        self.data = data

    def raw(self, path: str) -> Any:
        """The value at ``a.b.c``, or None. An intermediate that is not an object is refused."""
        cur: Any = self.data
        done = []
        for key in path.split("."):
            if cur is None:
                return None
            if not isinstance(cur, dict):
                raise InvalidArgument(f"{'.'.join(done)}: must be an object",
                                      target=".".join(done))
            cur = _get_ci(cur, key)
            done.append(key)
        return cur

    def typed(self, path: str, kind: type) -> Any:
        v = self.raw(path)
        if v is None:
            return None
        ok = isinstance(v, kind) and not (kind is int and isinstance(v, bool))
        if not ok:
            raise InvalidArgument(f"{path}: must be {_TYPES[kind]}, not {json.dumps(v)[:60]}",
                                  target=path)
        return v

    def str(self, path: str) -> str | None:
        return self.typed(path, str)

    def bool(self, path: str) -> bool | None:
        return self.typed(path, bool)

    def int(self, path: str) -> int | None:
        return self.typed(path, int)

    def obj(self, path: str) -> dict | None:
        return self.typed(path, dict)

    def list(self, path: str) -> list | None:
        return self.typed(path, list)

    def tags(self) -> dict | None:
        t = self.obj("tags")
        if t is None:
            return None
        for k, v in t.items():
            if not isinstance(v, str):
                raise InvalidArgument(f"tags.{k}: must be a string", target=f"tags.{k}")
        return t


def _get_ci(d: dict, key: str) -> Any:
    if key in d:
        return d[key]
    low = key.lower()
    for k, v in d.items():
        if isinstance(k, str) and k.lower() == low:
            return v
    return None


def _strip(d: dict, path: str) -> None:
    head, _, rest = path.partition(".")
    for k in list(d):
        if k.lower() == head.lower():
            if rest:
                if isinstance(d[k], dict):
                    _strip(d[k], rest)
            else:
                del d[k]


def update_ops(data: dict, *, ignore: tuple[str, ...] = ()) -> list[patch.Op]:
    """``data``'s leaves (objects recursed, arrays and scalars whole) as ``set`` operations;
    ``tags`` and the ``ignore`` paths (read-only or identifying fields) are left out."""
    d = json.loads(json.dumps(data))
    for p in ("tags", "id", "name", "type", "systemData", *ignore):
        _strip(d, p)
    exprs: list[str] = []

    def walk(v: Any, path: str) -> None:
        if isinstance(v, dict):
            for k, sub in v.items():
                if not isinstance(k, str) or not k or any(c in k for c in ".[]="):
                    raise InvalidArgument(f"{path}: '{k}' is not a property name", target=path)
                walk(sub, f"{path}.{k}" if path else k)
        elif path:
            exprs.append(f"{path}={json.dumps(v)}")

    walk(d, "")
    return [patch.Op("set", tuple(exprs))] if exprs else []
