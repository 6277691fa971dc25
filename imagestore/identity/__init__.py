"""The access layer's identity core: the local account (subscription, tenant, user) and the
bearer tokens the REST API accepts (:mod:`.tokens`)."""

from .account import TENANT, account_json, local_user
from .tokens import AUDIENCES, Claims, issue, verify

__all__ = ["AUDIENCES", "TENANT", "Claims", "account_json", "issue", "local_user", "verify"]
