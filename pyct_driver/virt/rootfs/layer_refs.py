"""Which layers the image store's records name: an image record or a
guest's holder record is a JSON object whose ``layers`` lists layer
digests. The store (``rootfs.store``) collects a layer once no record
names it; an unreadable record names nothing (the store writes records
atomically, so only a foreign file can be one).
"""

from __future__ import annotations

import json
import os


def layers_named(path: str) -> set[str] | None:
    """The layers the record at ``path`` names (None: unreadable)."""
    try:
        with open(path, encoding="utf-8") as f:
            return set(json.load(f).get("layers", []))
    except (OSError, ValueError, AttributeError, TypeError):
        return None


def layers_in(directory: str) -> set[str]:
    """Every layer the ``*.json`` records in ``directory`` name."""
    used: set[str] = set()
    for name in os.listdir(directory):
        if name.endswith(".json"):
            used |= layers_named(os.path.join(directory, name)) or set()
    return used
