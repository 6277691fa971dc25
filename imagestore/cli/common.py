"""Options every command shares (-o, --query, --store), accepted before or after the command,
as in az; and access to the opened store."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from ..home import Home
from .output import FORMATS, compile_query


def _set(key: str):
    def cb(ctx: click.Context, _param: click.Parameter, value: Any) -> Any:
        if value is not None:
            if key == "query":
                compile_query(value)  # refuse a bad query before any work is done
            meta = ctx.find_root().meta.setdefault("imagestore.output", {})
            meta[key] = value
            if key == "output":
                meta["output_explicit"] = True
        return value

    return cb


def _store_cb(ctx: click.Context, _param: click.Parameter, value: Any) -> Any:
    if value is not None:
        ctx.find_root().meta["imagestore.store"] = value
    return value


def common_options(f: Callable) -> Callable:
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
    return f


def open_home(ctx: click.Context, *, create: bool = True) -> Home:
    root = ctx.find_root()
    home = root.meta.get("imagestore.home")
    if home is None:
        home = Home.open(root.meta.get("imagestore.store"), create=create)
        root.meta["imagestore.home"] = home
        root.call_on_close(home.close)
    return home
