"""tools/leak_check.py (a program, not a package) loaded as a module, so
tests run the same before/after logic ``make test`` runs."""

from __future__ import annotations

import importlib.util
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PATH = os.path.join(REPO, "tools", "leak_check.py")

_spec = importlib.util.spec_from_file_location("leak_check", PATH)
leak_check = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = leak_check  # dataclasses look their module up
_spec.loader.exec_module(leak_check)
