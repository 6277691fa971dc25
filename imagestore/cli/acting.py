"""``--as PRINCIPAL``: run a command as a directory principal, authorized by RBAC first.

Without ``--as`` the CLI is the store owner (whoever can open the store's files can do
anything with them: the filesystem is the boundary) and nothing is checked. With it, the
command's ARM action and scope — the same the REST API checks for the same operation — must
be granted by the principal's role assignments, else exit 14 with ARM's AuthorizationFailed
message. A command that creates a resource from others (``disk|snapshot|image|vm|vmss
create``, ``sig image-version create``) also needs the linked action on each source, checked
by the same function as a REST PUT's body (:func:`imagestore.identity.linked.check`; exit 14,
LinkedAuthorizationFailed). Sources named by a bare name resolve as the command resolves
them (a snapshot first, then a disk); a name that resolves to nothing is checked as the
first candidate, so a refusal says nothing about what exists. A command that has no RBAC
mapping is refused under ``--as`` (exit 3) rather than run unchecked.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

from ..errors import InvalidArgument
from ..gallery import ids, shared_views
from ..gallery.repository import Repository
from ..identity import assignments, authorize, auxiliary, directory, principals
from ..identity import linked as linked_mod
from .common import acting_as, aux_tenants, open_home

_C = "Microsoft.Compute"


def _rg(p: dict) -> str:
    # ``_subscription``: the resource group's subscription, looked up by :func:`_check`
    return ids.resource_group_id(p["_subscription"], p.get("rg") or ids.DEFAULT_RG)


def _g(p: dict) -> str:
    return f"{_rg(p)}/providers/{_C}/galleries/{p['gallery']}"


def _i(p: dict) -> str:
    return f"{_g(p)}/images/{p['image']}"


def _v(p: dict) -> str:
    return f"{_i(p)}/versions/{p['version']}"


def _disk(p: dict) -> str:
    return f"{_rg(p)}/providers/{_C}/disks/{p['name']}"


def _res(kind: str) -> Callable[[dict], str]:
    def scope(p: dict) -> str:
        return f"{_rg(p)}/providers/{_C}/{kind}/{p['name']}"

    return scope


def _sub(p: dict) -> str:
    return ids.subscription_id(p["_subscription"])


def _rg_or_sub(p: dict) -> str:
    return _rg(p) if p.get("rg") else _sub(p)


def _sd(p: dict) -> str:
    """A definition's soft-deleted versions (REST: ``…/galleries/{g}/softDeletedArtifactTypes/
    Images/artifacts/{image}/versions``)."""
    return f"{_g(p)}/softDeletedArtifactTypes/Images/artifacts/{p['image']}/versions"


def _sd_v(p: dict) -> str:
    return f"{_sd(p)}/{p['version']}"


def _given_scope(p: dict) -> str:
    return (p.get("scope") or _sub(p)).rstrip("/")


#: command path -> (action, scope of the command's parameters); action None: no RBAC action
#: (open to every principal; the sharing commands of :mod:`.sig_share_cmds` add theirs)
ACTIONS: dict[str, tuple[str | None, Callable[[dict], str]]] = {
    "sig create": (f"{_C}/galleries/write", _g),
    "sig update": (f"{_C}/galleries/write", _g),
    "sig show": (f"{_C}/galleries/read", _g),
    "sig delete": (f"{_C}/galleries/delete", _g),
    "sig list": (f"{_C}/galleries/read", _rg_or_sub),
    "sig image-definition create": (f"{_C}/galleries/images/write", _i),
    "sig image-definition update": (f"{_C}/galleries/images/write", _i),
    "sig image-definition show": (f"{_C}/galleries/images/read", _i),
    "sig image-definition delete": (f"{_C}/galleries/images/delete", _i),
    "sig image-definition list": (f"{_C}/galleries/images/read", _g),
    "sig image-version create": (f"{_C}/galleries/images/versions/write", _v),
    "sig image-version update": (f"{_C}/galleries/images/versions/write", _v),
    "sig image-version show": (f"{_C}/galleries/images/versions/read", _v),
    "sig image-version wait": (f"{_C}/galleries/images/versions/read", _v),
    "sig image-version delete": (f"{_C}/galleries/images/versions/delete", _v),
    "sig image-version list": (f"{_C}/galleries/images/versions/read", _i),
    # soft delete (issue 15): undelete is a PUT of the version; list and purge are the REST
    # softDeletedArtifactTypes routes, whose action is derived from their path
    "sig image-version undelete": (f"{_C}/galleries/images/versions/write", _v),
    "sig image-version list-soft-deleted": (
        f"{_C}/galleries/softDeletedArtifactTypes/artifacts/versions/read", _sd),
    "sig image-version purge": (
        f"{_C}/galleries/softDeletedArtifactTypes/artifacts/versions/delete", _sd_v),
    "disk show": (f"{_C}/disks/read", _disk),
    "disk delete": (f"{_C}/disks/delete", _disk),
    "disk list": (f"{_C}/disks/read", _rg_or_sub),
    "disk grant-access": (f"{_C}/disks/beginGetAccess/action", _disk),
    "disk revoke-access": (f"{_C}/disks/endGetAccess/action", _disk),
    "role definition list": ("Microsoft.Authorization/roleDefinitions/read", _sub),
    "role assignment create": ("Microsoft.Authorization/roleAssignments/write", _given_scope),
    "role assignment delete": ("Microsoft.Authorization/roleAssignments/delete", _given_scope),
    "role assignment list": ("Microsoft.Authorization/roleAssignments/read", _given_scope),
    "account show": ("Microsoft.Resources/subscriptions/read", _sub),
    "group create": ("Microsoft.Resources/subscriptions/resourceGroups/write", _rg),
    "group show": ("Microsoft.Resources/subscriptions/resourceGroups/read", _rg),
    "group exists": ("Microsoft.Resources/subscriptions/resourceGroups/read", _rg),
    "group delete": ("Microsoft.Resources/subscriptions/resourceGroups/delete", _rg),
    "group list": ("Microsoft.Resources/subscriptions/resourceGroups/read", _sub),
}
ACTIONS["disk create"] = (f"{_C}/disks/write", _disk)
# creates, reads, deletes and power actions of snapshots, managed images, VMs and scale sets
for _cmd, _kind in (("snapshot", "snapshots"), ("image", "images"), ("vm", "virtualMachines"),
                    ("vmss", "virtualMachineScaleSets")):
    ACTIONS[f"{_cmd} create"] = (f"{_C}/{_kind}/write", _res(_kind))
    ACTIONS[f"{_cmd} show"] = (f"{_C}/{_kind}/read", _res(_kind))
    ACTIONS[f"{_cmd} delete"] = (f"{_C}/{_kind}/delete", _res(_kind))
    ACTIONS[f"{_cmd} list"] = (f"{_C}/{_kind}/read", _rg_or_sub)
for _verb in ("start", "restart", "deallocate", "generalize"):
    ACTIONS[f"vm {_verb}"] = (f"{_C}/virtualMachines/{_verb}/action", _res("virtualMachines"))
for _verb in ("start", "deallocate"):
    ACTIONS[f"vmss {_verb}"] = (f"{_C}/virtualMachineScaleSets/{_verb}/action",
                                _res("virtualMachineScaleSets"))
ACTIONS["vm stop"] = (f"{_C}/virtualMachines/powerOff/action", _res("virtualMachines"))
ACTIONS["vmss stop"] = (f"{_C}/virtualMachineScaleSets/powerOff/action",
                        _res("virtualMachineScaleSets"))
ACTIONS["vm get-instance-view"] = (f"{_C}/virtualMachines/instanceView/read",
                                   _res("virtualMachines"))
ACTIONS["vmss list-instances"] = (f"{_C}/virtualMachineScaleSets/virtualMachines/read",
                                  _res("virtualMachineScaleSets"))
ACTIONS["vmss scale"] = (f"{_C}/virtualMachineScaleSets/write", _res("virtualMachineScaleSets"))


# -- linked resources: what a create names as its sources, as ARM ids --------------------------


def _rg_name(p: dict) -> str:
    return p.get("rg") or ids.DEFAULT_RG


def _image_ref(repo: Any, text: str | None, rg: str) -> list[str]:  # noqa: ANN401
    """A version or definition (= latest) id from a full id or GALLERY/DEFINITION[/VERSION]
    (in the subscription the id names, else its resource group's; a shared or community
    image links to nothing: its share is the authorization)."""
    if not text or shared_views.is_shared_reference(text):
        return []
    r = ids.parse_image_ref(text, rg, field="image")
    sub = r.subscription or repo.subscription_of(r.rg)
    return [ids.image_id(sub, r.rg, r.gallery, r.image) if r.is_latest
            else ids.version_id(sub, r.rg, r.gallery, r.image, r.version)]


def _disk_source(repo: Any, text: str | None, rg: str,  # noqa: ANN401 - a Repository
                 kinds: tuple[str, ...] = ("snapshots", "disks")) -> list[str]:
    """A snapshot or disk source's id (az's order for a bare name: a snapshot, then a disk;
    neither found: the snapshot's id). A file URI links to nothing."""
    from ..gallery import sources

    if not text or sources.is_uri(text):
        return []
    ref = ids.parse_resource_ref(text, rg, field="source", kinds=kinds)
    make = {"snapshots": ids.snapshot_id, "disks": ids.disk_id, "images": ids.managed_image_id}
    sub = ref.subscription or repo.subscription_of(ref.rg)
    if ref.kind is not None:
        return [make[ref.kind](sub, ref.rg, ref.name)]
    find = {"snapshots": repo.find_snapshot, "disks": repo.find_disk,
            "images": repo.find_managed_image}
    kind = next((k for k in kinds if find[k](ref.rg, ref.name) is not None), kinds[0])
    return [make[kind](sub, ref.rg, ref.name)]


def _vm_source(repo: Any, text: str | None, rg: str) -> list[str]:  # noqa: ANN401
    if not text:
        return []
    from ..compute import arm_vm
    from ..compute.vms import parse_vm_ref

    vrg, name = parse_vm_ref(text, rg)
    return [arm_vm.vm_id(repo.subscription_of(vrg), vrg, name)]


def _storage_account(text: str | None) -> list[str]:
    if not text:
        return []
    if not text.strip().lower().startswith("/subscriptions/"):
        raise InvalidArgument("as: --os-vhd-storage-account: give the storage account's "
                              "resource id under --as (listKeys is checked on it), not a name "
                              "or endpoint", target="as")
    return [text.strip()]


def _many(values: Any) -> list[str]:  # noqa: ANN401 - a Variadic option's value
    return [str(v) for v in values or ()]


def _links(path: str, p: dict, repo: Any) -> list[str]:  # noqa: ANN401
    """The ARM ids the command ``path`` with parameters ``p`` references."""
    rg = _rg_name(p)
    if path == "disk create":
        return _image_ref(repo, p.get("reference"), rg) + _disk_source(repo, p.get("source"), rg)
    if path == "snapshot create":
        return _disk_source(repo, p.get("source"), rg)
    if path == "image create":
        return [i for t in [p.get("source"), *_many(p.get("data_disk_sources"))]
                for i in _disk_source(repo, t, rg)]
    if path in ("vm create", "vmss create"):
        return _image_ref(repo, p.get("image"), rg)
    if path == "sig image-version create":
        return [*_vm_source(repo, p.get("source_vm"), rg),
                *_image_ref(repo, p.get("source_version"), rg),
                *[i for t in [p.get("os_snapshot"), *_many(p.get("data_snapshots"))]
                  for i in _disk_source(repo, t, rg, ("snapshots",))],
                *_disk_source(repo, p.get("managed_image"), rg, ("images",)),
                *_storage_account(p.get("os_vhd_storage_account"))]
    return []


LINKED = frozenset({"disk create", "snapshot create", "image create", "vm create",
                    "vmss create", "sig image-version create"})


def _role_scopes(path: str, p: dict, dr: Any) -> list[str]:  # noqa: ANN401
    """Where a custom role is written or deleted: every assignable scope it has and, for an
    update, will have (Azure: the action is needed on all of them)."""
    from ..identity import custom_roles

    if path == "role definition delete":
        return list(custom_roles.existing(dr, p["name"]).assignable_scopes)
    doc = custom_roles.load(p["role_definition"])
    out: list[str] = []
    if path == "role definition update":
        ident = doc.get("id") or doc.get("name") or doc.get("roleName")
        if isinstance(ident, str) and ident.strip():
            out += custom_roles.existing(dr, ident).assignable_scopes
    if "assignableScopes" in doc:
        out += custom_roles.scopes_of(dr, p["role_definition"])
    return out


#: commands whose scopes are the role definition's assignable scopes
ROLE_WRITES = {"role definition create": "Microsoft.Authorization/roleDefinitions/write",
               "role definition update": "Microsoft.Authorization/roleDefinitions/write",
               "role definition delete": "Microsoft.Authorization/roleDefinitions/delete"}


def _check(ctx: click.Context, params: dict[str, Any]) -> None:
    who = acting_as(ctx)
    if who is None:
        if aux_tenants(ctx):
            raise InvalidArgument("aux-tenants: only with --as (the store owner needs no "
                                  "auxiliary tenant)", target="aux-tenants")
        return  # the store owner
    path = ctx.command_path.split(" ", 1)[1] if " " in ctx.command_path else ctx.command_path
    found = ACTIONS.get(path)
    if path in ROLE_WRITES:
        found = (ROLE_WRITES[path], _sub)
    if found is None:
        raise InvalidArgument(f"as: 'imagestore {path}' cannot run --as a principal (it has "
                              f"no RBAC action yet); run it as the store owner", target="as")
    action, scope_of = found
    params = _with_subscription(ctx, params)
    _authorize(ctx, who, action, scope_of(params), path, params)


def _with_subscription(ctx: click.Context, params: dict[str, Any]) -> dict[str, Any]:
    """``params`` with ``_subscription``, what the scope functions name: ``--subscription``
    when the command has it, else the subscription of its resource group (names are unique
    in the store; without -g the group is 'default')."""
    rg = params.get("rg") if isinstance(params.get("rg"), str) else None
    sub = params.get("subscription") if isinstance(params.get("subscription"), str) else None
    if sub is None:
        with directory.open_directory(open_home(ctx, create=False)) as dr:
            sub = Repository.on(dr.con).subscription_of(rg or ids.DEFAULT_RG)
    return {**params, "_subscription": sub}


def _authorize(ctx: click.Context, who: str, action: str | None, scope: str,
               path: str = "", params: dict[str, Any] | None = None) -> None:
    home = open_home(ctx, create=False)
    if action is None:  # open to every principal (community galleries): it must exist
        with directory.open_directory(home) as dr:
            _aux(ctx, dr, home, directory.resolve(dr, home, who), who)  # validated all the same
        return
    with directory.open_directory(home) as dr:
        p = directory.resolve(dr, home, who)
        if p.type == directory.GROUP:
            raise InvalidArgument(f"as: '{who}' is a group; act as a user or service "
                                  f"principal", target="as")
        if who.strip().lower() != p.object_id.lower():  # an app id: signed in to the scope's
            p = assignments.in_scope_tenant(dr, home, p, scope)  # tenant, as az login --tenant
        aux = _aux(ctx, dr, home, p, who)  # checked for every command, as REST's header
        client = p.name  # ARM names a user by UPN, a service principal by app id
        if p.type == directory.SERVICE_PRINCIPAL:
            client = principals.show(home, p.object_id).app_id
        if path in ROLE_WRITES and params is not None:
            for role_scope in dict.fromkeys(_role_scopes(path, params, dr)):
                authorize.check(dr, p.object_id, action, role_scope, client=client)
            return
        authorize.check(dr, p.object_id, action, scope, client=client)
        if path in LINKED and params is not None:
            repo = Repository(home.gallery_database)
            try:
                refs = _links(path, params, repo)
            finally:
                repo.close()
            caller = linked_mod.Caller(p.object_id, client, p.tenant_id, aux)
            linked_mod.check(dr, caller, action, scope,
                             linked_mod.actions(refs, for_version=path.startswith("sig ")))


def _aux(ctx: click.Context, dr: Any, home: Any, p: directory.Principal,  # noqa: ANN401
         who: str) -> tuple[tuple[str, str], ...]:
    """(tenant id, object id) of the principal in each ``--aux-tenants`` tenant, with the
    rules of REST's auxiliary tokens (:mod:`imagestore.identity.auxiliary`): at most 3, each
    another tenant than the principal's own and the others', where the same application
    has an object (else AADSTS700016, exit 4)."""
    names = aux_tenants(ctx)
    if len(names) > auxiliary.MAX_TOKENS:
        raise InvalidArgument(f"aux-tenants: {len(names)} tenants given; at most "
                              f"{auxiliary.MAX_TOKENS} are accepted", target="aux-tenants")
    seen = {p.tenant_id.lower()}
    out: list[tuple[str, str]] = []
    for name in names:
        tid = directory.tenant(dr, name)[0]
        if tid.lower() in seen:
            raise InvalidArgument(f"aux-tenants: tenant '{name}' is the principal's own tenant "
                                  f"or is named twice", target="aux-tenants")
        seen.add(tid.lower())
        obj = directory.in_tenant(dr, home, p, tid, who)
        out.append((tid, obj.object_id))
    return tuple(out)


def guard(ctx: click.Context, action: str, params: dict) -> Callable[[], None] | None:
    """A check of a further ``action`` on the gallery of ``params`` for the principal of
    ``--as``, for a service to run when the operation needs it (enabling soft delete needs
    ``galleries/share/action``); None for the store owner."""
    who = acting_as(ctx)
    if who is None:
        return None
    return lambda: _authorize(ctx, who, action, _g(_with_subscription(ctx, params)))


def _wrap(cmd: click.Command) -> None:
    inner = cmd.callback
    if inner is None or getattr(inner, "_rbac_wrapped", False):
        return

    @functools.wraps(inner)
    def run(*args: Any, **kwargs: Any) -> Any:
        _check(click.get_current_context(), kwargs)
        return inner(*args, **kwargs)

    run._rbac_wrapped = True  # type: ignore[attr-defined]
    cmd.callback = run


def install(group: click.Group) -> None:
    """Authorize every leaf command of ``group`` (recursively) before it runs."""
    for cmd in group.commands.values():
        if isinstance(cmd, click.Group):
            install(cmd)
        else:
            _wrap(cmd)
