"""The local account, as ``az account show`` prints it.

Until the directory issue brings tenants and principals, a store has one subscription (the
fixed local id of :mod:`imagestore.gallery.ids`), one tenant (:data:`TENANT`) and one user:
the operating-system user running imagestore.
"""

from __future__ import annotations

import getpass
import os

from ..gallery import ids

#: the local tenant (directory) id: fixed, like the local subscription id
TENANT = "00000000-0000-0000-0000-000000000001"
SUBSCRIPTION_NAME = "imagestore local"


def local_user() -> str:
    """The operating-system user (``user.name`` in ``account show``)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid-{os.getuid()}"


def account_json(store_root: str) -> dict:
    """``imagestore account show``: the fields ``az account show`` prints."""
    return {
        "environmentName": "imagestore",
        "homeTenantId": TENANT,
        "id": ids.SUBSCRIPTION,
        "isDefault": True,
        "managedByTenants": [],
        "name": SUBSCRIPTION_NAME,
        "state": "Enabled",
        "tenantId": TENANT,
        "user": {"name": local_user(), "type": "user"},
        "imagestore": {"store": store_root},
    }
