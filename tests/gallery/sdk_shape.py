"""Checks our ARM JSON against the real azure-mgmt-compute models, in both model styles the
SDK has shipped:

* **typespec** (azure-mgmt-compute >= 38, installed): ``Model(mapping)``; fields are
  ``_attr_to_rest_field`` (attribute -> rest field with ``_rest_name``); types, enums included,
  are the class annotations (``Optional[Union[str, "_models.ReplicationState"]]``).
* **msrest** (37.x, installed by scripts/setup.sh into ``build/sdk/``): ``Model.deserialize``;
  fields are ``_attribute_map`` (attribute -> ``{"key": "properties.osType", "type": "str"}``,
  dotted keys being flattened JSON); enum fields are typed ``str`` there, their enum is named
  by the generated docstring (``:vartype state: str or ~azure.mgmt.compute.models.X``).

:func:`check` walks every key of a document: a key the model does not define (outside
``properties.localStorage``), a value that reads back different or with another JSON type, and
a string in an enum-typed field that is not one of the enum's values (spelled exactly) each
raise :class:`ShapeError` naming the JSON path. Each style then serializes the model again and
the result must equal the document (local extras and date spellings aside).
"""

from __future__ import annotations

import datetime as dt
import enum
import importlib
import os
import re
import sys
import types
import typing
from collections import Counter
from dataclasses import dataclass, field

import pytest

LOCAL = "$.properties.localStorage"
#: the compute layer's local facts (VMs, scale sets: issue 14)
LOCAL_COMPUTE = "$.properties.localCompute"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LEGACY_DIR = os.environ.get(
    "IMAGESTORE_LEGACY_SDK", os.path.join(ROOT, "build", "sdk", "azure-mgmt-compute-37"))


class ShapeError(AssertionError):
    pass


@dataclass
class Report:
    keys: int = 0  # JSON keys walked
    enum_values: int = 0  # enum strings checked
    #: JSON path (list indexes as []) of every enum-typed value checked -> times
    enum_fields: Counter = field(default_factory=Counter)


def _fail(path: str, why: str) -> None:
    raise ShapeError(f"{path}: {why}")


def _check_enum(enums: list[type[enum.Enum]], value, path: str, rep: Report) -> None:
    if not enums:
        return
    allowed = {m.value for e in enums for m in e}
    for v in value if isinstance(value, list) else [value]:
        if v is None:
            continue
        if not isinstance(v, str) or v not in allowed:
            names = "/".join(e.__name__ for e in enums)
            _fail(path, f"{v!r} is not a {names} value ({', '.join(sorted(allowed))})")
        rep.enum_values += 1
    rep.enum_fields[re.sub(r"\[\d+\]", "[]", path)] += 1


def _same_datetime(obj, data, path: str) -> None:
    if not isinstance(data, str):
        _fail(path, f"date-time expected, got {data!r}")
    try:
        want = dt.datetime.fromisoformat(data)
    except ValueError:
        _fail(path, f"not an ISO 8601 date-time: {data!r}")
    if obj != want:
        _fail(path, f"reads back as {obj!r}, not {data!r}")


def _same_scalar(obj, data, path: str, kinds: tuple[type, ...]) -> None:
    """``data`` is a JSON scalar of one of ``kinds`` and the model reads it back equal."""
    if isinstance(obj, enum.Enum):
        obj = obj.value
    if kinds:
        ok = any((type(data) is bool) if k is bool else
                 (isinstance(data, k) and not isinstance(data, bool)) for k in kinds)
        if not ok:
            _fail(path, f"{data!r} is not a JSON {'/'.join(k.__name__ for k in kinds)}")
    if type(obj) is not type(data) and not (isinstance(obj, float) and isinstance(data, int)):
        _fail(path, f"reads back as {obj!r} ({type(obj).__name__}), not {data!r}")
    if obj != data:
        _fail(path, f"reads back as {obj!r}, not {data!r}")


# -- typespec models (azure-mgmt-compute >= 38) ------------------------------------------------

class Typespec:
    name = "typespec"

    def __init__(self, models: types.ModuleType) -> None:
        from azure.mgmt.compute._utils.model_base import Model

        self.models = models
        self.Model = Model
        self._hints: dict[type, dict] = {}

    def cls(self, name: str) -> type:
        return getattr(self.models, name)

    def hints(self, cls: type) -> dict:
        if cls not in self._hints:
            mod = sys.modules[cls.__module__]
            self._hints[cls] = typing.get_type_hints(cls, globalns={**vars(mod), "_models": self.models})
        return self._hints[cls]

    def check(self, cls_name: str, data: dict, rep: Report) -> None:
        obj = self.cls(cls_name)(data)
        self._walk(obj, data, "$", None, rep)
        again = _normalize(self._rebuild(obj).as_dict())
        if again != _normalize(data):
            raise ShapeError(f"$: {cls_name} rebuilt from its attributes differs:\n{again}\n!=\n"
                             f"{_normalize(data)}")

    def _walk(self, obj, data, path: str, hint, rep: Report) -> None:
        if isinstance(obj, self.Model):
            if not isinstance(data, dict):
                _fail(path, f"object expected, got {data!r}")
            fields = {f._rest_name: a for a, f in obj._attr_to_rest_field.items()}
            hints = self.hints(type(obj))
            for key, val in data.items():
                sub = f"{path}.{key}"
                if sub in (LOCAL, LOCAL_COMPUTE):
                    continue
                if key not in fields:
                    _fail(sub, f"unknown to {type(obj).__name__}")
                rep.keys += 1
                h = hints.get(fields[key])
                _check_enum(_enums_in(h), val, sub, rep)
                self._walk(getattr(obj, fields[key]), val, sub, h, rep)
        elif isinstance(obj, list):
            if not isinstance(data, list) or len(obj) != len(data):
                _fail(path, f"list of {len(obj)} read back from {data!r}")
            elem = _list_elem(hint)
            for i, (o, d) in enumerate(zip(obj, data, strict=True)):
                self._walk(o, d, f"{path}[{i}]", elem, rep)
        elif isinstance(obj, dict):
            if obj != data:
                _fail(path, f"reads back as {obj!r}, not {data!r}")
        elif isinstance(obj, dt.datetime) or dt.datetime in _flatten_args(hint):
            if not isinstance(obj, dt.datetime):
                _fail(path, f"not a date-time: {data!r}")
            _same_datetime(obj, data, path)
        else:
            _same_scalar(obj, data, path, _scalars_in(hint))

    def _rebuild(self, obj):
        """A fresh model from the typed attribute values only (keyword construction)."""
        if isinstance(obj, self.Model):
            kw = {a: self._rebuild(getattr(obj, a)) for a, f in obj._attr_to_rest_field.items()
                  if f._rest_name in obj}
            return type(obj)(**kw)
        if isinstance(obj, list):
            return [self._rebuild(x) for x in obj]
        if isinstance(obj, dict):
            return {k: self._rebuild(v) for k, v in obj.items()}
        return obj


def _flatten_args(hint) -> list:
    out, todo = [], [hint]
    while todo:
        h = todo.pop()
        args = typing.get_args(h)
        if typing.get_origin(h) is typing.Union or isinstance(h, types.UnionType):
            todo.extend(args)
        else:
            out.append(h)
    return out


def _enums_in(hint) -> list[type[enum.Enum]]:
    """Enum classes a field's annotation names, its list's element type included."""
    found = []
    for h in _flatten_args(hint):
        if typing.get_origin(h) is list:
            found += _enums_in(typing.get_args(h)[0])
        elif isinstance(h, type) and issubclass(h, enum.Enum):
            found.append(h)
    return found


def _scalars_in(hint) -> tuple[type, ...]:
    return tuple(h for h in _flatten_args(hint) if h in (str, int, float, bool))


def _list_elem(hint):
    for h in _flatten_args(hint):
        if typing.get_origin(h) is list:
            return typing.get_args(h)[0]
    return None


# -- msrest models (azure-mgmt-compute 37.x) --------------------------------------------------

class Msrest:
    name = "msrest"

    def __init__(self, models: types.ModuleType) -> None:
        self.models = models
        self.Model = importlib.import_module(
            models.__name__.rsplit(".", 1)[0] + "._utils.serialization").Model
        self._enums: dict[type, dict[str, list]] = {}

    def cls(self, name: str) -> type:
        return getattr(self.models, name)

    def enums(self, cls: type) -> dict[str, list[type[enum.Enum]]]:
        """attribute -> enum classes, from the generated ``:vartype`` lines of the class and
        its bases (msrest models type enum fields as plain ``str``)."""
        if cls not in self._enums:
            out: dict[str, list] = {}
            for c in reversed(cls.__mro__):
                for attr, text in re.findall(r":vartype (\w+):(.*?)(?=\n\s*:(?:ivar|vartype)|\Z)",
                                             c.__doc__ or "", re.S):
                    found = []
                    for n in re.findall(r"~azure\.mgmt\.compute\.models\.(\w+)", text):
                        e = getattr(self.models, n, None)
                        if isinstance(e, type) and issubclass(e, enum.Enum):
                            found.append(e)
                    out[attr] = found
            self._enums[cls] = out
        return self._enums[cls]

    def check(self, cls_name: str, data: dict, rep: Report) -> None:
        from azure.core.exceptions import DeserializationError

        try:
            obj = self.cls(cls_name).deserialize(data)
        except DeserializationError as e:  # a value of the wrong type for its field
            raise ShapeError(f"$: {cls_name}.deserialize refused it: {e}") from None
        self._walk(obj, data, "$", (), rep)
        again = _normalize(obj.serialize(keep_readonly=True))
        if again != _normalize(data):
            raise ShapeError(f"$: {cls_name} serialized again differs:\n{again}\n!=\n"
                             f"{_normalize(data)}")

    def _walk(self, obj, data, path: str, prefix: tuple[str, ...], rep: Report) -> None:
        """``obj``'s JSON at ``prefix`` (a flattened sub-object such as ``properties``)."""
        if not isinstance(data, dict):
            _fail(path, f"object expected, got {data!r}")
        children: dict[str, tuple[str, str] | None] = {}
        for attr, spec in type(obj)._attribute_map.items():
            parts = tuple(p.replace("\\.", ".") for p in re.split(r"(?<!\\)\.", spec["key"]))
            if parts[:len(prefix)] != prefix or len(parts) <= len(prefix):
                continue
            k = parts[len(prefix)]
            if len(parts) == len(prefix) + 1:
                children[k] = (attr, spec["type"])
            else:
                children.setdefault(k, None)  # a flattened container
        enums = self.enums(type(obj))
        for key, val in data.items():
            sub = f"{path}.{key}"
            if sub in (LOCAL, LOCAL_COMPUTE):
                continue
            if key not in children:
                _fail(sub, f"unknown to {type(obj).__name__}")
            rep.keys += 1
            if children[key] is None:
                self._walk(obj, val, sub, (*prefix, key), rep)
                continue
            attr, typ = children[key]
            _check_enum(enums.get(attr, []), val, sub, rep)
            self._value(getattr(obj, attr), val, typ, sub, rep)

    def _value(self, obj, data, typ: str, path: str, rep: Report) -> None:
        if typ.startswith("[") and typ.endswith("]"):
            if not isinstance(data, list) or not isinstance(obj, list) or len(obj) != len(data):
                _fail(path, f"list read back as {obj!r} from {data!r}")
            for i, (o, d) in enumerate(zip(obj, data, strict=True)):
                self._value(o, d, typ[1:-1], f"{path}[{i}]", rep)
        elif typ.startswith("{"):
            if obj != data:
                _fail(path, f"reads back as {obj!r}, not {data!r}")
        elif typ in ("iso-8601", "rfc-1123"):
            _same_datetime(obj, data, path)
        elif isinstance(obj, self.Model):
            self._walk(obj, data, path, (), rep)
        else:
            kinds = {"str": (str,), "int": (int,), "long": (int,), "bool": (bool,),
                     "float": (float, int)}.get(typ)
            if kinds is None:
                _fail(path, f"no check for msrest type {typ!r}")
            _same_scalar(obj, data, path, kinds)


# -- shared ------------------------------------------------------------------------------------

def _normalize(data):
    """Local extras dropped, date-times parsed (the SDKs write 'Z' and fractions their way)."""
    if isinstance(data, dict):
        return {k: _normalize(v) for k, v in data.items()
                if k not in ("localStorage", "localCompute")}
    if isinstance(data, list):
        return [_normalize(v) for v in data]
    if isinstance(data, str) and len(data) >= 20 and data[4] == "-" and data[10] == "T":
        try:
            return dt.datetime.fromisoformat(data)
        except ValueError:
            return data
    return data


def typespec_style() -> Typespec:
    from azure.mgmt.compute import models
    from azure.mgmt.compute._utils.model_base import Model

    if not issubclass(models.Gallery, Model):
        pytest.fail("installed azure-mgmt-compute does not have typespec models (need >= 38)")
    return Typespec(models)


def msrest_style() -> Msrest:
    """azure-mgmt-compute 37.x, loaded from its own directory under another package name
    (``_azure_mgmt_compute_37``) beside the installed version."""
    root = os.path.join(LEGACY_DIR, "azure", "mgmt", "compute")
    if not os.path.isfile(os.path.join(root, "models", "__init__.py")):
        pytest.fail(f"azure-mgmt-compute 37.x (msrest models) is not installed in {LEGACY_DIR} "
                    f"(run scripts/setup.sh, or set IMAGESTORE_LEGACY_SDK)")
    name = "_azure_mgmt_compute_37"
    if name not in sys.modules:
        pkg = types.ModuleType(name)
        pkg.__path__ = [root]
        sys.modules[name] = pkg
    models = importlib.import_module(f"{name}.models")
    if not hasattr(models.Gallery, "_attribute_map"):
        pytest.fail(f"{LEGACY_DIR} does not hold msrest models")
    return Msrest(models)
