"""Figures for the hardening report of `nox -s hardening`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def hardening_report(section: str, figures: dict[str, Any]) -> None:
    """Add figures to the hardening report (`nox -s hardening` sets
    BCONNECT_HARDENING_REPORT to a JSON file; sections from several tests add up)."""
    path = os.environ.get("BCONNECT_HARDENING_REPORT")
    if not path:
        return
    report = json.loads(Path(path).read_text()) if Path(path).exists() else {}
    current = report.setdefault(section, {})
    for key, value in figures.items():
        if isinstance(value, int | float) and isinstance(current.get(key), int | float):
            current[key] += value
        else:
            current[key] = value
    Path(path).write_text(json.dumps(report, indent=2) + "\n")
