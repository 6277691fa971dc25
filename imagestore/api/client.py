"""Pointing the Azure SDK at ``imagestore serve``: a credential holding an imagestore token,
and the client keyword arguments that use it.

azure-core's ``BearerTokenCredentialPolicy`` refuses to send a token over plain http; on
loopback without TLS the policy below marks each request as allowed to (the option azure-core
offers per request, ``enforce_https=False``, applied to every request including the
poller's). With ``--tls-cert`` nothing of this is needed beyond the credential::

    from azure.mgmt.compute import ComputeManagementClient
    from imagestore.api.client import sdk_kwargs
    client = ComputeManagementClient(**sdk_kwargs("http://127.0.0.1:8443", token))
"""

from __future__ import annotations

import time
from typing import Any

from azure.core.credentials import AccessToken
from azure.core.pipeline.policies import BearerTokenCredentialPolicy

from ..gallery import ids

SCOPE = "https://management.azure.com/.default"


class StaticTokenCredential:
    """A ``TokenCredential`` returning one token (from ``imagestore token create``)."""

    def __init__(self, token: str, expires_on: int | None = None) -> None:
        self.token = token
        self.expires_on = expires_on or int(time.time()) + 3600

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self.token, self.expires_on)

    def close(self) -> None:
        pass

    def __enter__(self) -> StaticTokenCredential:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class LoopbackBearerPolicy(BearerTokenCredentialPolicy):
    """The bearer policy, allowed to send the token over http (a loopback server)."""

    def on_request(self, request) -> None:  # noqa: ANN001 - azure-core's PipelineRequest
        request.context["enforce_https"] = False
        super().on_request(request)


def sdk_kwargs(base_url: str, token: str, *, subscription_id: str = ids.SUBSCRIPTION,
               **extra: Any) -> dict[str, Any]:
    """Arguments for ``ComputeManagementClient(**sdk_kwargs(url, token))``."""
    cred = StaticTokenCredential(token)
    kw: dict[str, Any] = {"credential": cred, "subscription_id": subscription_id,
                          "base_url": base_url, "credential_scopes": [SCOPE]}
    if base_url.startswith("http://"):
        kw["authentication_policy"] = LoopbackBearerPolicy(cred, SCOPE)
    kw.update(extra)
    return kw
