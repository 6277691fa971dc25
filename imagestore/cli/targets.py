"""Library error targets -> the CLI's flag names, in one table.

Library errors name the field they are about in the resource JSON's terms (``target``,
e.g. ``properties.storageProfile.osDiskImage.source.uri``) and their message starts with it.
The CLI shows the flag the user typed instead (``--os-vhd-uri: …``): :func:`cli_message`
replaces the message's leading target with the flag when the failing command has that flag
and the value came from it (or no generic update, ``--set``/``--add``/``--remove``, was
given, as for a missing required value). Otherwise the JSON path stays: it is what the user
wrote with ``--set``.
"""

from __future__ import annotations

import re

import click
from click.core import ParameterSource

from ..errors import ImagestoreError

#: target pattern ("[*]" matches any list index) -> flag, most specific first where they nest
TARGET_FLAGS: list[tuple[str, str]] = [
    ("resourceGroupName", "--resource-group"),
    ("galleryName", "--gallery-name"),
    ("galleryImageName", "--gallery-image-definition"),
    ("galleryImageVersionName", "--gallery-image-version"),
    ("diskName", "--name"),
    # sharing (issue 15)
    ("properties.sharingProfile.permissions", "--permissions"),
    ("properties.sharingProfile.communityGalleryInfo.publisherUri", "--publisher-uri"),
    ("properties.sharingProfile.communityGalleryInfo.publisherContact", "--publisher-email"),
    ("properties.sharingProfile.communityGalleryInfo.eula", "--eula"),
    ("properties.sharingProfile.communityGalleryInfo.publicNamePrefix", "--public-name-prefix"),
    ("publicGalleryName", "--public-gallery-name"),
    ("galleryUniqueName", "--gallery-unique-name"),
    # disk export (grant-access)
    ("durationInSeconds", "--duration-in-seconds"),
    ("access", "--access-level"),
    ("snapshotName", "--name"),
    ("imageName", "--name"),
    ("location", "--location"),
    ("tags", "--tags"),
    ("$expand", "--expand"),
    # galleries and image definitions
    ("properties.description", "--description"),
    ("properties.softDeletePolicy.isSoftDeleteEnabled", "--soft-delete"),
    ("properties.identifier.publisher", "--publisher"),
    ("properties.identifier.offer", "--offer"),
    ("properties.identifier.sku", "--sku"),
    ("properties.osType", "--os-type"),
    ("properties.osState", "--os-state"),
    ("properties.hyperVGeneration", "--hyper-v-generation"),
    ("properties.architecture", "--architecture"),
    ("properties.features", "--features"),
    ("properties.eula", "--eula"),
    ("properties.privacyStatementUri", "--privacy-statement-uri"),
    ("properties.releaseNoteUri", "--release-note-uri"),
    ("properties.endOfLifeDate", "--end-of-life-date"),
    ("properties.recommended.vCPUs.min", "--minimum-cpu-core"),
    ("properties.recommended.vCPUs.max", "--maximum-cpu-core"),
    ("properties.recommended.vCPUs", "--minimum-cpu-core/--maximum-cpu-core"),
    ("properties.recommended.memory.min", "--minimum-memory"),
    ("properties.recommended.memory.max", "--maximum-memory"),
    ("properties.recommended.memory", "--minimum-memory/--maximum-memory"),
    ("properties.disallowed.diskTypes", "--disallowed-disk-types"),
    ("properties.purchasePlan.name", "--plan-name"),
    ("properties.purchasePlan.publisher", "--plan-publisher"),
    ("properties.purchasePlan.product", "--plan-product"),
    # image versions
    ("properties.storageProfile.osDiskImage.source.uri", "--os-vhd-uri"),
    ("properties.storageProfile.osDiskImage.source.id", "--os-snapshot"),
    ("properties.storageProfile.osDiskImage.source", "--os-vhd-uri|--os-snapshot"),
    ("properties.storageProfile.dataDiskImages[*].source.uri", "--data-vhds-uris"),
    ("properties.storageProfile.dataDiskImages[*].source.id", "--data-snapshots"),
    ("properties.storageProfile.dataDiskImages[*].lun", "--data-vhds-luns|--data-snapshot-luns"),
    ("properties.storageProfile.dataDiskImages", "--data-vhds-luns|--data-snapshot-luns"),
    ("properties.storageProfile.source.id", "--image-version|--managed-image"),
    ("properties.publishingProfile.targetRegions", "--target-regions"),
    ("properties.publishingProfile.targetRegions[*].encryption", "--target-region-encryption"),
    ("properties.publishingProfile.replicaCount", "--replica-count"),
    ("properties.publishingProfile.storageAccountType", "--storage-account-type"),
    ("properties.publishingProfile.replicationMode", "--replication-mode"),
    ("properties.publishingProfile.excludeFromLatest", "--exclude-from-latest"),
    ("properties.publishingProfile.endOfLifeDate", "--end-of-life-date"),
    ("properties.safetyProfile.blockDeletionBeforeEndOfLife", "--block-deletion-before-end-of-life"),
    ("properties.safetyProfile.allowDeletionOfReplicatedLocations",
     "--allow-replicated-location-deletion"),
    # disks
    ("properties.creationData.galleryImageReference.id", "--gallery-image-reference"),
    ("properties.creationData.galleryImageReference.lun", "--gallery-image-reference-lun"),
    ("properties.creationData.sourceResourceId", "--source"),
    ("properties.storageProfile.osDisk.osType", "--os-type"),
    ("properties.storageProfile.osDisk", "--source"),
    ("properties.storageProfile.dataDisks", "--data-disk-sources"),
    ("sku.name", "--sku"),
    ("properties.localStorage.path", "--path"),
    ("properties.localStorage.format", "--format"),
    # token create (issue 12)
    ("expiresIn", "--expires-in"),
    ("assignee", "--assignee"),
]

GENERIC_UPDATE = ("--set", "--add", "--remove")

_PATTERNS = [(re.compile(re.escape(t).replace(r"\[\*\]", r"\[\d+\]") + r"(?=$|[.\[:])"), f)
             for t, f in TARGET_FLAGS]

#: where the command being run keeps its context (set by the gallery commands)
LEAF_KEY = "imagestore.command"


def flag_for(target: str) -> tuple[str, str] | None:
    """(the part of ``target`` a flag stands for, the flag), or None."""
    best: tuple[str, str] | None = None
    for pat, flag in _PATTERNS:
        m = pat.match(target)
        if m and (best is None or len(m.group(0)) > len(best[0])):
            best = (m.group(0), flag)
    return best


def _given(ctx: click.Context, flag: str) -> bool | None:
    """Whether option ``flag`` was given on the command line; None if the command has none."""
    for p in ctx.command.params:
        if isinstance(p, click.Option) and flag in p.opts:
            src = ctx.get_parameter_source(p.name) if p.name else None
            return src in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)
    return None


def cli_message(err: ImagestoreError, ctx: click.Context | None) -> str:
    """The message as the CLI prints it: the leading target replaced by the flag the user
    typed (see the module docstring)."""
    msg = err.message
    target = err.target
    if ctx is None or not target or not msg.startswith(target):
        return msg
    found = flag_for(target)
    if found is None:
        return msg
    part, flag = found
    if "|" in flag:  # alternative flags for one field: name the one the user typed
        alts = flag.split("|")
        typed = [f for f in alts if _given(ctx, f)]
        flag = typed[0] if typed else next((f for f in alts if _given(ctx, f) is not None),
                                           alts[0])
    flags = flag.split("/")
    given = [_given(ctx, f) for f in flags]
    if all(g is None for g in given):
        return msg  # this command has no such flag (an error about stored state)
    generic = any(_given(ctx, f) for f in GENERIC_UPDATE)
    if any(given) or not generic:
        return flag + msg[len(part):]
    return msg


def remember_command(ctx: click.Context) -> None:
    """Record the running command's context, for :func:`cli_message` at the error boundary."""
    ctx.find_root().meta[LEAF_KEY] = ctx


def command_of(ctx: click.Context) -> click.Context | None:
    """The context :func:`remember_command` recorded, if any."""
    return ctx.find_root().meta.get(LEAF_KEY)
