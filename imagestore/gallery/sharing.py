"""A gallery's sharing profile (issue 15): ``sharingProfile.permissions`` Private | Groups |
Community, set once at create; the groups (subscriptions and tenants) a Groups gallery is
shared with; the community information and public names of a Community gallery; and the
``POST …/galleries/{g}/share`` operations (Add, Remove, Reset, EnableCommunity).

The profile is stored in the gallery row's ``props`` JSON under ``sharingProfile`` (no
table of its own: the consumer views of :mod:`.shared_views` are computed from it, never
copied). Decisions where Azure is undocumented (README "Sharing"):

- Add/Remove on a gallery that is not ``Groups``, and EnableCommunity on one that is not
  ``Community`` → 409 ``OperationNotAllowed``; more than 30 subscriptions or 5 tenants → 400
  ``InvalidParameter`` (nothing changed); group ids must be GUIDs (they are not required to
  exist in the directory: a subscription can be shared with before it is created here).
- Reset clears everything (groups, community information, public names): the gallery is
  Private from then on and cannot be shared again (the 2022 preview text: "you won't be able to
  re-share it").
- A gallery shared with any group, or with the community enabled, cannot be deleted until it
  is reset (409 ``OperationNotAllowed``; Azure documents this for community galleries).
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from ..errors import InvalidArgument, OperationNotAllowed
from . import validate

PRIVATE, GROUPS, COMMUNITY = "Private", "Groups", "Community"
PERMISSIONS = (PRIVATE, GROUPS, COMMUNITY)
SUBSCRIPTIONS, TENANTS = "Subscriptions", "AADTenants"
GROUP_TYPES = (SUBSCRIPTIONS, TENANTS)
OPERATIONS = ("Add", "Remove", "Reset", "EnableCommunity")
#: Azure's limits on one direct share
MAX_SUBSCRIPTIONS, MAX_TENANTS = 30, 5
_SP = "properties.sharingProfile"
_CGI = f"{_SP}.communityGalleryInfo"
#: the community fields a Community gallery needs (REST name, az flag)
COMMUNITY_FIELDS = (("publisherUri", "--publisher-uri"), ("publisherContact", "--publisher-email"),
                    ("eula", "--eula"), ("publicNamePrefix", "--public-name-prefix"))
#: az's own message when one of the four is missing (RequiredArgumentMissingError)
COMMUNITY_MISSING = ("If you want to share to the community, you need to fill in all the "
                     "following parameters: --publisher-uri, --publisher-email, --eula, "
                     "--public-name-prefix.")
#: decision (Azure's rules are not documented): a prefix starts with a letter or digit and
#: has 1-64 letters, digits, '.', '_' or '-'
_PREFIX = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}$")


def permissions_of(props: dict) -> str:
    """The gallery's sharing type (Private when it has no profile)."""
    return (props.get("sharingProfile") or {}).get("permissions") or PRIVATE


def community_enabled(props: dict) -> bool:
    info = (props.get("sharingProfile") or {}).get("communityGalleryInfo") or {}
    return bool(info.get("communityGalleryEnabled"))


def group_ids(props: dict, gtype: str) -> list[str]:
    """The subscription or tenant ids a gallery is shared with (lower case)."""
    for g in (props.get("sharingProfile") or {}).get("groups") or ():
        if g["type"] == gtype:
            return list(g["ids"])
    return []


def public_names(props: dict) -> list[str]:
    info = (props.get("sharingProfile") or {}).get("communityGalleryInfo") or {}
    return list(info.get("publicNames") or ())


def create_profile(sharing: Any) -> dict | None:  # noqa: ANN401 - JSON
    """The stored profile for a create request's ``sharingProfile`` (None: none asked)."""
    if sharing is None:
        return None
    if not isinstance(sharing, dict):
        raise InvalidArgument(f"{_SP}: must be an object", target=_SP)
    extra = sorted(set(sharing) - {"permissions", "communityGalleryInfo", "groups"})
    if extra:
        raise InvalidArgument(f"{_SP}.{extra[0]}: unknown property", target=f"{_SP}.{extra[0]}")
    perm = validate.enum(f"{_SP}.permissions", sharing.get("permissions") or PRIVATE, PERMISSIONS)
    out: dict = {"permissions": perm}
    info = sharing.get("communityGalleryInfo")
    if perm != COMMUNITY:
        if info:
            raise InvalidArgument(f"{_CGI}: only with permissions Community (this gallery is "
                                  f"{perm})", target=_CGI)
        return out
    if not isinstance(info, dict) or any(not info.get(k) for k, _ in COMMUNITY_FIELDS):
        missing = [k for k, _ in COMMUNITY_FIELDS if not isinstance(info, dict) or not info.get(k)]
        raise InvalidArgument(f"{_CGI}: permissions Community needs publisherUri, "
                              f"publisherContact, eula and publicNamePrefix ({', '.join(missing)} "
                              f"missing)", target=_CGI)
    uri = validate.uri(f"{_CGI}.publisherUri", info["publisherUri"])
    contact = validate.text(f"{_CGI}.publisherContact", info["publisherContact"], 256)
    if not _EMAIL.match(contact or ""):
        raise InvalidArgument(f"{_CGI}.publisherContact: '{contact}' is not an e-mail address",
                              target=f"{_CGI}.publisherContact")
    eula = validate.text(f"{_CGI}.eula", info["eula"], 4096)
    prefix = info["publicNamePrefix"]
    if not isinstance(prefix, str) or not _PREFIX.match(prefix):
        raise InvalidArgument(f"{_CGI}.publicNamePrefix: '{prefix}' must be 1-64 letters, "
                              f"digits, '.', '_' or '-', starting with a letter or digit",
                              target=f"{_CGI}.publicNamePrefix")
    out["communityGalleryInfo"] = {"publisherUri": uri, "publisherContact": contact,
                                   "eula": eula, "publicNamePrefix": prefix,
                                   "communityGalleryEnabled": False, "publicNames": []}
    return out


def profile_json(props: dict, *, with_groups: bool = False) -> dict | None:
    """``properties.sharingProfile`` as the gallery's JSON shows it (groups only when asked:
    ``$select=Permissions`` / ``sig show --sharing-groups``)."""
    sp = props.get("sharingProfile")
    if sp is None:
        return {"permissions": PRIVATE, "groups": []} if with_groups else None
    out: dict = {"permissions": sp["permissions"]}
    if with_groups:
        out["groups"] = [{"type": g["type"], "ids": list(g["ids"])}
                         for g in sp.get("groups") or () if g["ids"]]
    if sp.get("communityGalleryInfo"):
        info = sp["communityGalleryInfo"]
        out["communityGalleryInfo"] = {k: (list(v) if isinstance(v, list) else v)
                                       for k, v in info.items()}
    return out


def sharing_status(props: dict, location: str) -> dict | None:
    """``properties.sharingStatus`` of a shared gallery: a share takes effect at once here,
    so every state is Succeeded (None for a Private gallery)."""
    if permissions_of(props) == PRIVATE:
        return None
    return {"aggregatedState": "Succeeded", "summary": [{"region": location,
                                                        "state": "Succeeded"}]}


def _guid(field: str, value: Any) -> str:  # noqa: ANN401
    try:
        return str(uuid.UUID(str(value))).lower()
    except ValueError:
        raise InvalidArgument(f"{field}: '{value}' is not a GUID", target=field) from None


def parse_update(body: Any) -> tuple[str, dict[str, list[str]]]:  # noqa: ANN401 - JSON
    """A ``SharingUpdate`` body -> (operation type, {group type: ids})."""
    if not isinstance(body, dict):
        raise InvalidArgument("operationType: the body must be a SharingUpdate object",
                              target="operationType")
    extra = sorted(set(body) - {"operationType", "groups"})
    if extra:
        raise InvalidArgument(f"{extra[0]}: unknown property of SharingUpdate", target=extra[0])
    op = validate.enum("operationType", body.get("operationType"), OPERATIONS)
    if op is None:
        raise InvalidArgument("operationType: required (Add, Remove, Reset or EnableCommunity)",
                              target="operationType")
    groups: dict[str, list[str]] = {SUBSCRIPTIONS: [], TENANTS: []}
    raw = body.get("groups") or []
    if not isinstance(raw, list):
        raise InvalidArgument("groups: must be a list", target="groups")
    for i, g in enumerate(raw):
        f = f"groups[{i}]"
        if not isinstance(g, dict):
            raise InvalidArgument(f"{f}: must be an object with type and ids", target=f)
        gtype = validate.enum(f"{f}.type", g.get("type"), GROUP_TYPES)
        if gtype is None:
            raise InvalidArgument(f"{f}.type: required (Subscriptions or AADTenants)",
                                  target=f"{f}.type")
        ids = g.get("ids") or []
        if not isinstance(ids, list):
            raise InvalidArgument(f"{f}.ids: must be a list", target=f"{f}.ids")
        for j, v in enumerate(ids):
            gid = _guid(f"{f}.ids[{j}]", v)
            if gid not in groups[gtype]:
                groups[gtype].append(gid)
    if op in ("Add", "Remove") and not (groups[SUBSCRIPTIONS] or groups[TENANTS]):
        raise InvalidArgument(f"groups: {op} needs at least one subscription or tenant id",
                              target="groups")
    if op in ("Reset", "EnableCommunity") and (groups[SUBSCRIPTIONS] or groups[TENANTS]):
        raise InvalidArgument(f"groups: {op} takes no groups", target="groups")
    return op, groups


def apply(props: dict, gallery: str, op: str, groups: dict[str, list[str]]) -> dict:
    """The gallery's props after a share operation (checked; ``props`` is not changed)."""
    new = {k: v for k, v in props.items() if k != "sharingProfile"}
    sp = dict(props.get("sharingProfile") or {"permissions": PRIVATE})
    perm = sp["permissions"]
    if op == "Reset":
        new["sharingProfile"] = {"permissions": PRIVATE}
        return new
    if op in ("Add", "Remove"):
        if perm != GROUPS:
            raise OperationNotAllowed(
                f"gallery '{gallery}' has sharingProfile.permissions {perm}: only a gallery "
                f"created with permissions Groups can be shared with subscriptions and tenants "
                f"(the permissions are set at create and can't be changed)",
                target="operationType")
        cur = {t: group_ids(props, t) for t in GROUP_TYPES}
        for t in GROUP_TYPES:
            if op == "Add":
                cur[t] += [i for i in groups[t] if i not in cur[t]]
            else:
                cur[t] = [i for i in cur[t] if i not in groups[t]]
        if len(cur[SUBSCRIPTIONS]) > MAX_SUBSCRIPTIONS:
            raise InvalidArgument(
                f"groups: a gallery can be shared with at most {MAX_SUBSCRIPTIONS} "
                f"subscriptions; this would make {len(cur[SUBSCRIPTIONS])}", target="groups")
        if len(cur[TENANTS]) > MAX_TENANTS:
            raise InvalidArgument(
                f"groups: a gallery can be shared with at most {MAX_TENANTS} tenants; this "
                f"would make {len(cur[TENANTS])}", target="groups")
        sp["groups"] = [{"type": t, "ids": cur[t]} for t in GROUP_TYPES if cur[t]]
        new["sharingProfile"] = sp
        return new
    # EnableCommunity
    if perm != COMMUNITY:
        raise OperationNotAllowed(
            f"gallery '{gallery}' has sharingProfile.permissions {perm}: only a gallery created "
            f"with permissions Community can be shared with the community",
            target="operationType")
    info = dict(sp["communityGalleryInfo"])
    if not info.get("publicNames"):
        info["publicNames"] = [f"{info['publicNamePrefix']}-{uuid.uuid4()}"]
    info["communityGalleryEnabled"] = True
    sp["communityGalleryInfo"] = info
    new["sharingProfile"] = sp
    return new


def check_deletable(props: dict, gallery: str) -> None:
    """A shared gallery is reset before it is deleted."""
    if community_enabled(props) or any(group_ids(props, t) for t in GROUP_TYPES):
        what = "the community" if community_enabled(props) else "subscriptions or tenants"
        raise OperationNotAllowed(
            f"gallery '{gallery}' is shared with {what}; reset its sharing first (sig share "
            f"reset / POST …/share operationType Reset), then delete it", target="galleryName")


def update_json(op: str, groups: dict[str, list[str]]) -> dict:
    """The ``SharingUpdate`` the share operation answers with."""
    out: dict = {"operationType": op}
    gs = [{"type": t, "ids": groups[t]} for t in GROUP_TYPES if groups[t]]
    if gs:
        out["groups"] = gs
    return out
