"""Reading a provider's JSON defensively: a value of the wrong type reads as empty, never raises.

Both adapters read names, emails, phones and error bodies through these, so a provider that
sends a number where a string belongs costs that one field, not the page.
"""

from __future__ import annotations

from typing import Any

__all__ = ["dicts", "text"]


def text(value: object) -> str:
    """``value`` stripped when it is a string; "" for anything else."""
    return value.strip() if isinstance(value, str) else ""


def dicts(value: object) -> list[dict[str, Any]]:
    """The objects in ``value`` when it is a list (other items left out); [] for anything else."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []
