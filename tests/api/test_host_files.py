"""A directory principal's REST requests may name host files (sources, disk paths) only
under `serve --principal-import-dir`, never inside the store: otherwise a Contributor could
import the store's token-signing key as a disk and export it. The owner's tokens are not
limited."""

from __future__ import annotations

import os

import pytest

from tests.compute.conftest import small_os_disk
from tests.conftest import Cli

from .conftest import SUB, start_server

pytestmark = pytest.mark.one_pass

API = "?api-version=2024-03-03"
DAPI = "?api-version=2024-03-02"
RG = f"{SUB}/resourceGroups/hf/providers/Microsoft.Compute"
VER = f"{RG}/galleries/G/images/d/versions"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostfiles")
    imports = tmp / "imports"
    imports.mkdir()
    outside = tmp / "outside"
    outside.mkdir()
    cli = Cli(str(tmp / "store"))
    cli.json("sig", "create", "-g", "hf", "-r", "G")
    cli.json("sig", "image-definition", "create", "-g", "hf", "-r", "G", "-i", "d", "-p", "P",
             "-f", "O", "-s", "S", "--os-type", "Linux")
    cli.json("ad", "user", "create", "--user-principal-name", "pat@contoso.example",
             "--display-name", "Pat")
    cli.json("role", "assignment", "create", "--assignee", "pat@contoso.example", "--role",
             "Contributor", "--scope", f"{SUB}/resourceGroups/hf")
    good = small_os_disk(imports / "os.raw")
    bad = small_os_disk(outside / "os.raw")
    os.symlink(bad, imports / "link.raw")
    s = start_server(cli.store, "--principal-import-dir", str(imports))
    tok = cli.json("token", "create", "--assignee", "pat@contoso.example")["accessToken"]
    yield {"cli": cli, "server": s, "pat": s.client(tok), "owner": s.client(), "good": good,
           "bad": bad, "imports": str(imports), "tmp": tmp}
    s.stop()
    if s.proc.poll() is None:
        s.proc.kill()


def version(uri: str) -> dict:
    return {"location": "local", "properties": {"storageProfile": {
        "osDiskImage": {"source": {"uri": uri}}}}}


def test_principal_host_files_are_confined(world):
    w = world
    pat = w["pat"]
    key = os.path.join(w["cli"].store, "identity", "token-signing.key")
    for n, uri in enumerate([
        "file://" + w["bad"],                                   # outside the import dir
        w["bad"],                                               # a bare path
        os.path.join(w["imports"], "..", "outside", "os.raw"),  # '..' out of it
        "file://" + os.path.join(w["imports"], "link.raw"),     # a symlink out of it
        "file://" + key,                                        # the store's own key
        "file:///etc/passwd",
    ]):
        r = pat.put(f"{VER}/1.0.{n}{API}", json=version(uri))
        assert r.status_code == 403, (uri, r.text)
        err = r.json()["error"]
        assert err["code"] == "AuthorizationFailed"
        assert "The client 'pat@contoso.example'" in err["message"]
        assert "properties.storageProfile.osDiskImage.source.uri" in err["message"]
    assert w["cli"].json("sig", "image-version", "list", "-g", "hf", "-r", "G", "-i", "d") == []
    # inside the import directory: allowed
    r = pat.put(f"{VER}/2.0.0{API}", json=version("file://" + w["good"]))
    assert r.status_code in (200, 201), r.text
    # a disk's target path is a host file too (written as the owner)
    target = str(w["tmp"] / "outside" / "evil.raw")
    r = pat.put(f"{RG}/disks/dd{DAPI}", json={"location": "local", "properties": {
        "creationData": {"createOption": "FromImage",
                         "galleryImageReference": {"id": f"{VER}/2.0.0"}},
        "localStorage": {"path": target}}})
    assert r.status_code == 403 and "properties.localStorage.path" in r.text, r.text
    assert not os.path.exists(target)
    # the owner's token is not confined
    r = w["owner"].put(f"{VER}/3.0.0{API}", json=version("file://" + w["bad"]))
    assert r.status_code in (200, 201), r.text


def test_no_import_dir_means_no_host_files_for_principals(tmp_path):
    cli = Cli(str(tmp_path / "store"))
    cli.json("sig", "create", "-g", "hf", "-r", "G")
    cli.json("sig", "image-definition", "create", "-g", "hf", "-r", "G", "-i", "d", "-p", "P",
             "-f", "O", "-s", "S", "--os-type", "Linux")
    cli.json("ad", "user", "create", "--user-principal-name", "q@contoso.example",
             "--display-name", "Q")
    cli.json("role", "assignment", "create", "--assignee", "q@contoso.example", "--role",
             "Owner", "--scope", SUB)
    src = small_os_disk(tmp_path / "os.raw")
    s = start_server(cli.store)
    try:
        tok = cli.json("token", "create", "--assignee", "q@contoso.example")["accessToken"]
        r = s.client(tok).put(f"{VER}/1.0.0{API}", json=version("file://" + src))
        assert r.status_code == 403, r.text
        assert "the server has no --principal-import-dir" in r.json()["error"]["message"]
    finally:
        s.stop()
