"""Every ARM client's first requests, against `imagestore serve --tls-self-signed`: the cloud
metadata document, OpenID discovery, the client-credentials token endpoint (v2 and v1) for a
service principal, refusals as Entra ID words them; and the real azure-identity
ClientSecretCredential (MSAL inside) getting a token that ComputeManagementClient uses."""

from __future__ import annotations

import base64
import os
import ssl

import httpx
import pytest

from imagestore.api.tls import ensure_self_signed
from imagestore.home import Home
from imagestore.identity import TENANT, principals

from .conftest import SUB, start_server

pytestmark = pytest.mark.one_pass

V2 = f"/{TENANT}/oauth2/v2.0/token"
V1 = f"/{TENANT}/oauth2/token"
ARM_SCOPE = "https://management.core.windows.net//.default"


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    store = str(tmp_path_factory.mktemp("oauth") / "store")
    Home.open(store).close()
    ca = ensure_self_signed(store, ["127.0.0.1"]).ca_cert  # the server reuses it
    saved = {k: os.environ.get(k) for k in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")}
    os.environ["SSL_CERT_FILE"] = os.environ["REQUESTS_CA_BUNDLE"] = ca
    s = start_server(store, "--tls-self-signed")
    s.ca = ca
    s.sp = principals.create(store, "ci-bot")
    yield s
    s.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def c(s) -> httpx.Client:
    return httpx.Client(base_url=s.url, verify=ssl.create_default_context(cafile=s.ca),
                        timeout=30)


def test_tls_is_verified_against_the_store_ca(tls):
    assert tls.url.startswith("https://")
    with pytest.raises(httpx.ConnectError):
        httpx.get(tls.url + "/metadata/endpoints?api-version=2022-09-01", verify=True,
                  trust_env=False)  # the system CAs do not know ours


def test_metadata_documents(tls):
    with c(tls) as h:
        doc = h.get("/metadata/endpoints?api-version=2022-09-01").json()
        assert doc["name"] == "imagestore"
        assert doc["resourceManager"] == tls.url + "/"
        assert doc["authentication"]["loginEndpoint"] == tls.url + "/"
        assert doc["authentication"]["audiences"][0] == "https://management.core.windows.net/"
        assert doc["suffixes"]["storage"]
        # az cloud register with a trailing slash on the URL asks for //metadata/endpoints
        assert h.get(tls.url + "//metadata/endpoints?api-version=2022-09-01").json() == doc
        assert h.get("/metadata/endpoints?api-version=2019-05-01").json() == [doc]
        stack = h.get("/metadata/endpoints?api-version=2015-01-01").json()
        assert stack["authentication"]["loginEndpoint"] == tls.url + "/"
        r = h.get("/metadata/endpoints")
        assert r.status_code == 400 and r.json()["error"]["code"] == "MissingApiVersionParameter"
        assert h.get("/metadata/endpoints?api-version=1999-01-01").status_code == 400


def test_openid_discovery(tls):
    with c(tls) as h:
        for t in (TENANT, "organizations", "common"):
            oc = h.get(f"/{t}/v2.0/.well-known/openid-configuration").json()
            assert oc["token_endpoint"] == tls.url + V2
            assert oc["authorization_endpoint"].startswith(tls.url)
        assert h.get(f"/{TENANT}/.well-known/openid-configuration").json()[
            "token_endpoint"] == tls.url + V1
        r = h.get("/11111111-2222-3333-4444-555555555555/v2.0/.well-known/openid-configuration")
        assert r.status_code == 400 and r.json()["error_codes"] == [90002]
        assert h.get(f"/{TENANT}/discovery/v2.0/keys").json() == {"keys": []}


def test_client_credentials_v2_v1_basic(tls):
    sp = tls.sp
    with c(tls) as h:
        r = h.post(V2, data={"grant_type": "client_credentials", "client_id": sp["appId"],
                             "client_secret": sp["password"], "scope": ARM_SCOPE})
        assert r.status_code == 200, r.text
        tok = r.json()
        assert tok["token_type"] == "Bearer" and tok["expires_in"] > 3000
        assert r.headers["cache-control"].startswith("no-store")
        subs = h.get("/subscriptions?api-version=2022-12-01",
                     headers={"Authorization": f"Bearer {tok['access_token']}"}).json()
        assert subs["value"][0]["tenantId"] == TENANT
        r = h.post(V1, data={"grant_type": "client_credentials", "client_id": sp["appId"],
                             "client_secret": sp["password"],
                             "resource": "https://management.azure.com/"})
        assert r.status_code == 200 and r.json()["resource"] == "https://management.azure.com/"
        basic = base64.b64encode(f"{sp['appId']}:{sp['password']}".encode()).decode()
        r = h.post(V2, data={"grant_type": "client_credentials", "scope": ARM_SCOPE},
                   headers={"Authorization": f"Basic {basic}"})
        assert r.status_code == 200


@pytest.mark.parametrize("form, status, error, code", [
    ({"client_secret": "x"}, 401, "invalid_client", 7000215),
    ({"client_id": "00000000-0000-0000-0000-00000000dead"}, 400, "unauthorized_client", 700016),
    ({"grant_type": "password"}, 400, "unsupported_grant_type", 70003),
    ({"grant_type": None}, 400, "invalid_request", 900144),
    ({"scope": "https://vault.azure.net/.default"}, 400, "invalid_resource", 500011),
    ({"scope": "https://management.azure.com/user_impersonation"}, 400, "invalid_scope",
     1002012),
    ({"client_secret": None}, 401, "invalid_client", 7000218),
    ({"client_id": None}, 400, "invalid_request", 900144),
])
def test_refusals(tls, form, status, error, code):
    data = {"grant_type": "client_credentials", "client_id": tls.sp["appId"],
            "client_secret": tls.sp["password"], "scope": ARM_SCOPE}
    data.update(form)
    data = {k: v for k, v in data.items() if v is not None}
    with c(tls) as h:
        r = h.post(V2, data=data)
    assert r.status_code == status, r.text
    j = r.json()
    assert j["error"] == error and j["error_codes"] == [code]
    assert j["error_description"].startswith(f"AADSTS{code}: ")
    assert "access_token" not in j


def test_malformed_requests(tls):
    with c(tls) as h:
        r = h.post(V2, json={"grant_type": "client_credentials"})
        assert r.status_code == 400 and r.json()["error"] == "invalid_request"
        r = h.post(V2, content=b"a=" + b"x" * (70 << 10),
                   headers={"content-type": "application/x-www-form-urlencoded"})
        assert r.status_code == 400
        r = h.post("/not-a-tenant/oauth2/v2.0/token", data={"grant_type": "client_credentials"})
        assert r.status_code == 400 and r.json()["error_codes"] == [90002]


def test_azure_identity_and_the_sdk(tls):
    from azure.identity import ClientSecretCredential
    from azure.mgmt.compute import ComputeManagementClient

    from imagestore.gallery import ids

    cred = ClientSecretCredential(TENANT, tls.sp["appId"], tls.sp["password"],
                                  authority=tls.url, disable_instance_discovery=True)
    tok = cred.get_token("https://management.azure.com/.default")
    assert tok.token.count(".") == 2
    client = ComputeManagementClient(cred, ids.SUBSCRIPTION, base_url=tls.url,
                                     credential_scopes=["https://management.azure.com/.default"])
    with client:
        client.galleries.begin_create_or_update("rg", "g1", {"location": "local"}).result()
        assert client.galleries.get("rg", "g1").name == "g1"
    bad = ClientSecretCredential(TENANT, tls.sp["appId"], "wrong", authority=tls.url,
                                 disable_instance_discovery=True)
    from azure.core.exceptions import ClientAuthenticationError
    from azure.identity import CredentialUnavailableError  # noqa: F401 - the family raised
    with pytest.raises(ClientAuthenticationError, match="AADSTS7000215"):
        bad.get_token("https://management.azure.com/.default")
    bad.close()
    cred.close()
    with c(tls) as h:
        r = h.get(SUB + "?api-version=2022-12-01",
                  headers={"Authorization": f"Bearer {tok.token}"})
    assert r.json()["subscriptionId"] == ids.SUBSCRIPTION
