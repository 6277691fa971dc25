"""Regions and replication: named stores made of zones, the chunk copy engine, replica copies
with fail-over reads and repair. See ``registry.py``, ``replicate.py`` and ``replicas.py``."""

from .registry import Region, RegionRegistry
from .replicas import (
    STORAGE_ACCOUNT_TYPES,
    RepairReport,
    failover_reader,
    gc_region,
    materialize_from_copies,
    plan_copies,
    read_chunk_failover,
    remove_copies,
    repair,
    replicate_to_region,
    verify_region,
)
from .replicate import ReplicateResult, replicate

__all__ = [
    "STORAGE_ACCOUNT_TYPES",
    "Region",
    "RegionRegistry",
    "RepairReport",
    "ReplicateResult",
    "failover_reader",
    "gc_region",
    "materialize_from_copies",
    "plan_copies",
    "read_chunk_failover",
    "remove_copies",
    "repair",
    "replicate",
    "replicate_to_region",
    "verify_region",
]
