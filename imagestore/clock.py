"""The gallery's clock: the current time, UTC, movable for tests and drills.

``IMAGESTORE_NOW`` (an ISO-8601 time, UTC when it has no zone) replaces the system clock for
everything that reads :func:`now` — the gallery's timestamps, endOfLifeDate checks, and soft
delete's retention (a soft-deleted image version is purged once this clock passes its
hard-deletion time). Token and SAS expiry keep the system clock: a moved gallery clock must
not mint or accept credentials outside their lifetime.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

from .errors import InvalidArgument

ENV = "IMAGESTORE_NOW"


def now() -> datetime:
    """``IMAGESTORE_NOW`` when set (InvalidArgument naming it when it is not a time), else the
    system clock."""
    text = os.environ.get(ENV, "").strip()
    if not text:
        return datetime.now(UTC)
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidArgument(f"{ENV}: '{text}' is not an ISO-8601 time "
                              f"(e.g. 2026-01-31T12:00:00Z)", target=ENV) from None
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)
