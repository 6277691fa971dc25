"""The real `az` (PyPI azure-cli, in build/az-venv from scripts/setup.sh) against
`imagestore serve --tls-self-signed`, in one az session: a custom cloud registered from our
/metadata/endpoints, `az login --service-principal` through our token endpoint (and a wrong
secret refused with Entra ID's AADSTS code), `az sig create`, `sig image-definition
create`, `sig image-version create --os-vhd-uri file://…`, `sig image-version show` equal
to `imagestore sig image-version show`, `az disk grant-access` -> a download by ranges equal
to the source (qemu-img compare) -> `az disk revoke-access` -> 403.

az needs one setting to work offline: `core.instance_discovery=false` (here
AZURE_CORE_INSTANCE_DISCOVERY=false). Without it MSAL asks login.microsoftonline.com
whether our authority is a known one (GET /common/discovery/instance), which cannot work
without the internet, and `az login` fails with a connection error.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from imagestore.api.tls import ensure_self_signed
from imagestore.home import Home
from imagestore.identity import TENANT
from tests.helpers import need

from .conftest import start_server

pytestmark = pytest.mark.one_pass

AZ = Path(__file__).resolve().parents[2] / "build" / "az-venv" / "bin" / "az"
IN_CI = bool(os.environ.get("CI") or os.environ.get("IMAGESTORE_CI"))
MiB = 1 << 20


def _az_or_skip() -> str:
    if AZ.exists():
        return str(AZ)
    msg = f"the az CLI is not installed at {AZ} (scripts/setup.sh installs it)"
    if IN_CI:
        pytest.fail(msg)
    pytest.skip(msg)


def imagestore(store: str, *args: str) -> dict:
    import sys
    p = subprocess.run([sys.executable, "-m", "imagestore.cli.main", "--store", store, *args],
                       capture_output=True, text=True)
    assert p.returncode == 0, (args, p.stdout, p.stderr)
    return json.loads(p.stdout) if p.stdout.strip() else {}


def test_az_end_to_end(tmp_path, monkeypatch):
    az_bin = _az_or_skip()
    store = str(tmp_path / "store")
    Home.open(store).close()
    ca = ensure_self_signed(store, ["127.0.0.1"]).ca_cert
    monkeypatch.setenv("SSL_CERT_FILE", ca)  # start_server's readiness probe trusts our CA
    server = start_server(store, "--tls-self-signed", "--principal-import-dir", str(tmp_path))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "ARM_"))}
    env.update({
        "AZURE_CONFIG_DIR": str(tmp_path / "azcfg"),
        "REQUESTS_CA_BUNDLE": ca,
        "AZURE_CORE_INSTANCE_DISCOVERY": "false",
        "AZURE_CORE_COLLECT_TELEMETRY": "false",
        "AZURE_CORE_ONLY_SHOW_ERRORS": "true",
        "AZURE_CORE_NO_COLOR": "true",
    })

    def az(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
        p = subprocess.run([az_bin, *args], capture_output=True, text=True, env=env,
                           timeout=120)
        if ok:
            assert p.returncode == 0, (args, p.stdout, p.stderr)
        return p

    def az_json(*args: str):
        return json.loads(az(*args, "-o", "json").stdout)

    try:
        sp = imagestore(store, "ad", "sp", "create-for-rbac", "--name", "az-e2e")
        assert sp["tenant"] == TENANT
        # the cloud, from our metadata document (a trailing slash, as people type it)
        az("cloud", "register", "--name", "imagestore",
           "--endpoint-resource-manager", server.url + "/")
        # (every endpoint came from our document: the login below uses them)
        az("cloud", "set", "--name", "imagestore")
        bad = az("login", "--service-principal", "-u", sp["appId"], "-p", "not-the-secret",
                 "--tenant", TENANT, ok=False)
        assert bad.returncode != 0 and "AADSTS7000215" in bad.stderr, bad.stderr
        accounts = az_json("login", "--service-principal", "-u", sp["appId"], "-p",
                           sp["password"], "--tenant", TENANT)
        assert accounts[0]["tenantId"] == TENANT and accounts[0]["isDefault"]
        assert accounts[0]["user"] == {"name": sp["appId"], "type": "servicePrincipal"}

        # the gallery commands
        g = az_json("sig", "create", "-g", "rg", "-r", "g", "-l", "local")
        assert g["provisioningState"] == "Succeeded"
        d = az_json("sig", "image-definition", "create", "-g", "rg", "-r", "g", "-i", "d",
                    "-p", "Contoso", "-f", "Web", "-s", "2026", "--os-type", "Linux",
                    "-l", "local")
        assert d["identifier"] == {"publisher": "Contoso", "offer": "Web", "sku": "2026"}
        src = str(tmp_path / "os.vhd")
        subprocess.run([need("qemu-img"), "create", "-q", "-f", "vpc", "-o", "force_size=on",
                        src, "8M"], check=True)
        subprocess.run([need("qemu-io"), "-f", "vpc", "-c", "write -P 0x5a 1M 3M", src],
                       check=True, capture_output=True)
        account = ("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/"
                   "providers/Microsoft.Storage/storageAccounts/local")
        v = az_json("sig", "image-version", "create", "-g", "rg", "-r", "g", "-i", "d",
                    "-e", "1.0.0", "-l", "local", "--os-vhd-uri", Path(src).as_uri(),
                    "--os-vhd-storage-account", account)
        assert v["provisioningState"] == "Succeeded"
        shown = az_json("sig", "image-version", "show", "-g", "rg", "-r", "g", "-i", "d",
                        "-e", "1.0.0")
        ours = imagestore(store, "sig", "image-version", "show", "-g", "rg", "-r", "g",
                          "-i", "d", "-e", "1.0.0")
        # az prints the SDK model as az always does: `properties` flattened into the top
        # level and `resourceGroup` added; imagestore's extra `properties.localStorage` is
        # not in the SDK's model
        flat = {k: val for k, val in ours.items() if k != "properties"}
        flat.update({k: val for k, val in ours["properties"].items() if k != "localStorage"})
        flat["resourceGroup"] = "rg"
        assert shown == flat

        # disk export through az
        vid = ours["id"]
        imagestore(store, "disk", "create", "-g", "rg", "-n", "d1",
                   "--gallery-image-reference", vid, "--format", "vhdx")
        sas = az_json("disk", "grant-access", "-g", "rg", "-n", "d1",
                      "--duration-in-seconds", "600")
        assert set(sas) == {"accessSAS"} and sas["accessSAS"].startswith(server.url)
        out = tmp_path / "export.vhd"
        with open(out, "wb") as f:
            for r in ("0-1048575", "1048576-"):
                f.write(subprocess.run([need("curl"), "-sSf", "--cacert", ca, "-r", r,
                                        sas["accessSAS"]], capture_output=True,
                                       check=True).stdout)
        p = subprocess.run([need("qemu-img"), "compare", "-f", "vpc", "-F", "vpc", str(out),
                            src], capture_output=True, text=True)
        assert p.returncode == 0, p.stdout + p.stderr
        az("disk", "revoke-access", "-g", "rg", "-n", "d1")
        gone = subprocess.run([need("curl"), "-s", "-o", "/dev/null", "-w", "%{http_code}",
                               "--cacert", ca, "-r", "0-9", sas["accessSAS"]],
                              capture_output=True, text=True)
        assert gone.stdout == "403"
    finally:
        server.stop()
