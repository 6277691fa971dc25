"""The README's REST API snippets run as written against a real server (only the server URL,
the store and the source file are put in)."""

from __future__ import annotations

import os
import re
import sys

import pytest

from .conftest import make_source

pytestmark = pytest.mark.one_pass

README = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")


def snippets() -> list[str]:
    text = open(README).read()
    section = text.split("## REST API", 1)[1].split("\n## ", 1)[0]
    sdk = section.split("### Python SDK", 1)[1]
    return re.findall(r"```python\n(.*?)```", sdk, re.S)


def test_readme_sdk_snippets_run(server, tmp_path):
    # the snippet sets no polling interval: the server's Retry-After (1 s) paces the poller
    blocks = snippets()
    assert len(blocks) == 2
    src = make_source(tmp_path, "os", "vhdx", 0x33)
    cli = f'[{sys.executable!r}, "-m", "imagestore.cli.main", "--store", {server.store!r}, '
    first = (blocks[0].replace('["imagestore", ', cli)
             .replace("http://127.0.0.1:8443", server.url)
             .replace("file:///srv/images/os.vhdx", "file://" + src))
    ns: dict = {}
    exec(compile(first, "README.md (Python SDK)", "exec"), ns)  # noqa: S102 - the docs' own code
    assert ns["version"].provisioning_state == "Succeeded"
    second = blocks[1].replace("http://127.0.0.1:8443", server.url)
    exec(compile(second, "README.md (without imagestore)", "exec"), ns)  # noqa: S102
    assert [g.name for g in ns["client"].galleries.list_by_resource_group("rg")] == ["myGallery"]
