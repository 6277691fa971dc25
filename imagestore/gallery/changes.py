"""What an update may change: the diff of a resource's JSON before and after, checked against
the properties that are mutable for its type."""

from __future__ import annotations

from ..errors import PropertyChangeNotAllowed
from . import patch


def check_changes(cur: dict, new: dict, mutable: tuple[str, ...]) -> None:
    """Refuse (PropertyChangeNotAllowed, naming it) the first changed property that is not
    under one of the ``mutable`` paths."""
    for path in patch.diff(cur, new):
        if not patch.under(path, mutable):
            raise PropertyChangeNotAllowed(f"Changing property '{path}' is not allowed",
                                           target=path)
