"""Options every command shares, accepted before or after the command as in az (``-o``,
``--query``, ``--store``, ``--only-show-errors``, ``--verbose``, ``--debug``); az's generic
update arguments (``--set``/``--add``/``--remove``/``--force-string``); ``--ids``; and access to
the opened store."""

from __future__ import annotations

import functools
import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from typing import Any

import click
from click.core import ParameterSource

from ..errors import InvalidArgument
from ..gallery import ids as arm_ids
from ..gallery.patch import Op, PatchError
from ..home import Home
from .output import FORMATS, collecting, compile_query, emit

log = logging.getLogger("imagestore")

_OUTPUT = "imagestore.output"


def _set(key: str):
    def cb(ctx: click.Context, _param: click.Parameter, value: Any) -> Any:
        if value is not None:
            if key == "query":
                compile_query(value)  # refuse a bad query before any work is done
            meta = ctx.find_root().meta.setdefault(_OUTPUT, {})
            meta[key] = value
            if key == "output":
                meta["output_explicit"] = True
        return value

    return cb


def _store_cb(ctx: click.Context, _param: click.Parameter, value: Any) -> Any:
    if value is not None:
        ctx.find_root().meta["imagestore.store"] = value
    return value


# -- logging: --only-show-errors, --verbose, --debug -----------------------------------------


class _EchoHandler(logging.Handler):
    """Log records on the current stderr (click's, so CliRunner captures them), az-style."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = self.format(record)
        except Exception:  # noqa: BLE001 - logging must never break a command
            return
        click.echo(f"{record.levelname}: {msg}", err=True)


_LEVELS = {"only_show_errors": logging.ERROR, "verbose": logging.INFO, "debug": logging.DEBUG}


def _log_cb(key: str):
    """Every command logs the ``imagestore`` loggers on stderr, az-style (``WARNING: …``);
    the flags change the level (the most verbose one given wins, as in az)."""

    def cb(ctx: click.Context, _param: click.Parameter, value: Any) -> Any:
        root = ctx.find_root()
        meta = root.meta.setdefault(_OUTPUT, {})
        if value:
            meta[key] = True
        handler = root.meta.get("imagestore.log_handler")
        if handler is None:
            handler = _EchoHandler()
            root.meta["imagestore.log_handler"] = handler
            log.addHandler(handler)
            log.propagate = False
            started = time.monotonic()

            def close() -> None:
                log.info("Command ran in %.3f seconds", time.monotonic() - started)
                log.removeHandler(handler)
                log.setLevel(logging.NOTSET)
                log.propagate = True

            root.call_on_close(close)
        given = [_LEVELS[k] for k in _LEVELS if meta.get(k)]
        level = min(given) if given else logging.WARNING
        log.setLevel(level)
        handler.setFormatter(logging.Formatter(
            "%(name)s: %(message)s" if level <= logging.DEBUG else "%(message)s"))
        return value

    return cb


def only_show_errors(ctx: click.Context) -> bool:
    """Did the user ask for errors only (no warnings, no progress)?"""
    return bool(ctx.find_root().meta.get(_OUTPUT, {}).get("only_show_errors"))


def verbose(ctx: click.Context) -> bool:
    """Did the user ask for --verbose or --debug?"""
    meta = ctx.find_root().meta.get(_OUTPUT, {})
    return bool(meta.get("verbose") or meta.get("debug"))


def _as_cb(ctx: click.Context, _param: click.Parameter, value: Any) -> Any:
    if value is not None:
        ctx.find_root().meta["imagestore.as"] = value
    return value


def acting_as(ctx: click.Context) -> str | None:
    """The principal named with ``--as`` (or ``IMAGESTORE_AS``), None for the store owner."""
    given = ctx.find_root().meta.get("imagestore.as")
    if given is None:
        given = os.environ.get("IMAGESTORE_AS") or None
    return given


def _aux_cb(ctx: click.Context, _param: click.Parameter, value: Any) -> Any:
    if value:
        root = ctx.find_root().meta
        given = [t for v in value for t in v.replace(",", " ").split()]
        root["imagestore.aux_tenants"] = [*root.get("imagestore.aux_tenants", []), *given]
    return value


def aux_tenants(ctx: click.Context) -> list[str]:
    """The tenants named with ``--aux-tenants`` (in the order given)."""
    return list(ctx.find_root().meta.get("imagestore.aux_tenants", []))


def common_options(f: Callable) -> Callable:
    """The options every command takes, so they work before or after the command (az)."""
    f = click.option(
        "--aux-tenants", "aux_tenants", multiple=True, expose_value=False, callback=_aux_cb,
        is_eager=True, metavar="TENANT[,TENANT…]",
        help="With --as: up to 3 other tenants (ids or domains) of the same service "
             "principal, whose objects there authorize linked resources in those tenants' "
             "subscriptions (REST's x-ms-authorization-auxiliary; az's --aux-tenants).",
    )(f)
    f = click.option(
        "--as", "as_principal", default=None, expose_value=False, callback=_as_cb,
        is_eager=True, metavar="PRINCIPAL",
        help="Act as this user or service principal (UPN, app id, object id or name): the "
             "command is authorized by its role assignments (default: the store owner).",
    )(f)
    f = click.option(
        "-o", "--output", type=click.Choice(FORMATS, case_sensitive=False), default=None,
        expose_value=False, callback=_set("output"), is_eager=True,
        help="Output format (default json).",
    )(f)
    f = click.option(
        "--query", default=None, expose_value=False, callback=_set("query"), is_eager=True,
        help="JMESPath query applied to the output.",
    )(f)
    f = click.option(
        "--store", "store_dir", default=None, expose_value=False, callback=_store_cb,
        is_eager=True, metavar="DIR", envvar=None,
        help="Store directory (default $IMAGESTORE_HOME, else ~/.local/share/imagestore).",
    )(f)
    f = click.option(
        "--only-show-errors", is_flag=True, default=False, expose_value=False, is_eager=True,
        callback=_log_cb("only_show_errors"),
        help="Only show errors, suppressing warnings and progress bars.",
    )(f)
    f = click.option(
        "--verbose", is_flag=True, default=False, expose_value=False, is_eager=True,
        callback=_log_cb("verbose"),
        help="Increase logging verbosity (INFO lines on stderr). Use --debug for full logs.",
    )(f)
    f = click.option(
        "--debug", is_flag=True, default=False, expose_value=False, is_eager=True,
        callback=_log_cb("debug"),
        help="Show all debug logs, and a traceback for internal errors (as IMAGESTORE_DEBUG=1).",
    )(f)
    return f


def open_home(ctx: click.Context, *, create: bool = True) -> Home:
    """The store of this invocation (``--store``), opened once and closed with the command."""
    root = ctx.find_root()
    home = root.meta.get("imagestore.home")
    if home is None:
        home = Home.open(root.meta.get("imagestore.store"), create=create)
        root.meta["imagestore.home"] = home
        root.call_on_close(home.close)
    return home


# -- az's one-or-more values ------------------------------------------------------------------


def is_option_token(arg: str) -> bool:
    """Does a command-line token start a new option (``-x``, ``--x``; not ``-1``)?"""
    if len(arg) < 2 or not arg.startswith("-"):
        return False
    try:
        float(arg)
        return False
    except ValueError:
        return True


class GroupedOption(click.Option):
    """An az-style option taking one or more values up to the next option (``--add PATH a=b
    c=d``). Every occurrence is also recorded, in command-line order, under ``ctx.meta[key]``
    as ``(name, [values])``, so that several such options keep their relative order."""

    def __init__(self, *args: Any, record_as: str | None = None, **kwargs: Any) -> None:
        kwargs["multiple"] = True
        super().__init__(*args, **kwargs)
        self.record_as = record_as

    def add_to_parser(self, parser, ctx) -> None:  # noqa: ANN001 - click's signature
        super().add_to_parser(parser, ctx)
        for name in self.opts:
            opt = parser._long_opt.get(name) or parser._short_opt.get(name)
            if opt is not None:
                break
        else:  # pragma: no cover - click internals changed
            return
        orig = opt.process
        record_as = self.record_as

        def process(value, state) -> None:  # noqa: ANN001
            group = [value]
            while state.rargs and not is_option_token(state.rargs[0]):
                group.append(state.rargs.pop(0))
            for v in group:
                orig(v, state)
            if record_as is not None:
                ctx.meta.setdefault(_UPDATES, []).append((record_as, group))

        opt.process = process


# -- az's generic update: --set / --add / --remove / --force-string ---------------------------

_UPDATES = "imagestore.generic_update"


def generic_update_options(f: Callable) -> Callable:
    """az's generic update arguments for an ``update`` command. The command receives
    ``sets``: the operations as :class:`~imagestore.gallery.patch.Op`, in command-line order
    (after its own flags, as az applies them). Errors of the patch engine are reported under
    the flag that caused them (``--set: unknown property 'properties.foo'``)."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        force = bool(kwargs.pop("force_string", False))
        groups = ctx.meta.get(_UPDATES, [])
        kwargs["sets"] = [Op(kind, tuple(vals), force_string=force) for kind, vals in groups]
        try:
            return f(*args, **kwargs)
        except PatchError as e:
            raise InvalidArgument(f"--{e.operation}: {e.message}", target=e.target) from None

    wrapper = click.option(
        "--force-string", is_flag=True, default=False,
        help="With --set or --add, keep string literals instead of converting them to JSON.",
    )(wrapper)
    wrapper = click.option(
        "--remove", cls=GroupedOption, record_as="remove", expose_value=False,
        metavar="PATH [INDEX]",
        help="Remove a property or map key (--remove tags.k), or a list item "
             "(--remove publishingProfile.targetRegions 1).",
    )(wrapper)
    wrapper = click.option(
        "--add", cls=GroupedOption, record_as="add", expose_value=False,
        metavar="LIST_PATH ITEM...",
        help="Add to a list: key=value pairs make one object, or give JSON "
             "(--add publishingProfile.targetRegions name=west regionalReplicaCount=1).",
    )(wrapper)
    wrapper = click.option(
        "--set", cls=GroupedOption, record_as="set", expose_value=False,
        metavar="PATH=VALUE...",
        help="Set properties by their path in the JSON output; 'properties.' may be left out "
             "(--set publishingProfile.excludeFromLatest=true tags.k=v "
             "publishingProfile.targetRegions[0].regionalReplicaCount=2). Values are JSON "
             "where they parse as JSON.",
    )(wrapper)
    return wrapper


# -- --ids ------------------------------------------------------------------------------------

#: per kind of resource: the id's (segment keyword, name option) pairs after the provider,
#: what to call it, and its short form
_ID_KINDS: dict[str, tuple[tuple[tuple[str, str], ...], str, str]] = {
    "gallery": ((("galleries", "gallery"),), "a gallery", "GALLERY"),
    "image": ((("galleries", "gallery"), ("images", "image")), "an image definition",
              "GALLERY/DEFINITION"),
    "version": ((("galleries", "gallery"), ("images", "image"), ("versions", "version")),
                "an image version", "GALLERY/DEFINITION/VERSION"),
    "disk": ((("disks", "name"),), "a disk", "NAME"),
    "snapshot": ((("snapshots", "name"),), "a snapshot", "NAME"),
    "managed-image": ((("images", "name"),), "a managed image", "NAME"),
}


def _names(kind: str) -> tuple[str, ...]:
    return tuple(name for _seg, name in _ID_KINDS[kind][0])


def parse_id(text: str, kind: str) -> dict[str, str]:
    """A full ARM id, or the short form (resource group ``default``), of a resource of
    ``kind`` ("gallery", "image", "version", "disk") -> the command's name arguments
    (``rg`` and ``gallery``/``image``/``version`` or ``name``)."""
    segments, what, short = _ID_KINDS[kind]
    names = _names(kind)
    raw = text.strip()
    parts = raw.strip("/").split("/")
    n = len(segments)
    full = raw.startswith("/")
    form = ("/subscriptions/S/resourceGroups/RG/providers/Microsoft.Compute"
            + "".join(f"/{seg}/{name[0].upper()}" for seg, name in segments) + f" or {short}")
    bad = InvalidArgument(f"--ids: '{text}' is not {what} id ({form})")
    if (full and len(parts) != 6 + 2 * n) or (not full and len(parts) != n) or not all(parts):
        raise bad
    if not full:
        return {"rg": arm_ids.DEFAULT_RG, **dict(zip(names, parts, strict=True))}
    keys = [p.lower() for p in parts[0::2]]
    vals = parts[1::2]
    if keys != ["subscriptions", "resourcegroups", "providers", *(seg for seg, _ in segments)]:
        raise bad
    if vals[2].lower() != arm_ids.PROVIDER.lower():
        raise InvalidArgument(f"--ids: provider '{vals[2]}' is not {arm_ids.PROVIDER}")
    return {"rg": vals[1], **dict(zip(names, vals[3:], strict=True)), "subscription": vals[0]}


def check_id_scopes(ctx: click.Context, targets: list[dict[str, str]]) -> None:
    """Each full id's subscription exists and holds its resource group (a resource group
    name is unique in the store, so the id's resource group alone finds the resource);
    NotFound naming ``--ids`` otherwise. Removes the ``subscription`` keys."""
    wanted = [(t.pop("subscription"), t["rg"]) for t in targets if "subscription" in t]
    if not wanted:
        return
    from ..gallery.repository import Repository
    from ..gallery.resource_groups import check_ref

    repo = Repository(open_home(ctx, create=False).gallery_database)
    try:
        for sub, rg in wanted:
            check_ref(repo, sub, rg, "--ids")
    finally:
        repo.close()


def split_ids(values: Iterable[str]) -> list[str]:
    """``--ids`` values as az takes them: space- or newline-separated ids (``-o tsv``), or
    JSON holding objects with an ``id`` (a command's ``-o json`` output piped in)."""
    out: list[str] = []
    for v in values:
        try:
            doc = json.loads(v)
        except ValueError:
            doc = None
        if isinstance(doc, (dict, list)):
            for item in doc if isinstance(doc, list) else [doc]:
                if not (isinstance(item, dict) and isinstance(item.get("id"), str)):
                    raise InvalidArgument("--ids: JSON input must hold objects with an 'id'")
                out.append(item["id"])
        else:
            out += v.split()
    return out


def _flag_names(p: click.Parameter) -> str:
    return "/".join(p.opts)


def ids_option(kind: str) -> Callable[[Callable], Callable]:
    """az's ``--ids`` for show/update/delete/wait of a ``kind`` of resource ("gallery",
    "image", "version", "disk"): one or more full ids or short forms, instead of (and not together
    with) -g and the name options. Several ids run the command once each; their results
    print as one list. Put it right under the ``@….command`` decorator."""
    names = _names(kind)

    def deco(f: Callable) -> Callable:
        params = {p.name: p for p in getattr(f, "__click_params__", [])}
        replaced = [params[n] for n in ("rg", *names) if n in params]
        required = [p for p in replaced if p.required]
        for p in required:
            p.required = False

        @functools.wraps(f)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            ctx = click.get_current_context()
            values = split_ids(kwargs.pop("ids", ()) or ())
            if not values:
                for p in required:
                    if kwargs.get(p.name) is None:
                        raise click.UsageError(
                            f"Missing option '{_flag_names(p)}' (or --ids).", ctx)
                return f(*args, **kwargs)
            both = [p for p in replaced if ctx.get_parameter_source(p.name)
                    in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)]
            if both:
                raise click.UsageError(
                    f"--ids cannot be combined with {', '.join(_flag_names(p) for p in both)} "
                    "(the ids name the resources)", ctx)
            targets = [parse_id(v, kind) for v in values]
            check_id_scopes(ctx, targets)
            if len(targets) == 1:
                return f(*args, **{**kwargs, **targets[0]})
            with collecting(ctx) as results:
                for t in targets:
                    f(*args, **{**kwargs, **t})
            if results:
                emit(ctx, results)
            return None

        return click.option(
            "--ids", cls=GroupedOption, metavar="ID...",
            help="One or more resource ids (space-separated): full ARM ids, or "
                 f"{_ID_KINDS[kind][2]} in resource group 'default'. Replaces "
                 f"{' '.join(p.opts[0] for p in replaced)}.",
        )(wrapper)

    return deco
