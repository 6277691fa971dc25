"""The gallery repository's parts, one module per aggregate (see :mod:`..repository`, the
facade that composes them into :class:`~imagestore.gallery.repository.Repository`).

:mod:`.states` the stored state Enums, :mod:`.rows` the typed rows, :mod:`.base` the
connection and the shared select helpers; then one mixin per aggregate:
:mod:`.resource_groups`, :mod:`.galleries` (galleries and definitions), :mod:`.versions`,
:mod:`.soft_deleted`, :mod:`.version_disks`, :mod:`.regions`, :mod:`.disks`,
:mod:`.linked_parents`, :mod:`.artifacts` (snapshots and managed images),
:mod:`.capture_intents`, :mod:`.jobs` (the queue and the worker lease), :mod:`.operations`,
:mod:`.compute` (VMs and scale sets).
"""
