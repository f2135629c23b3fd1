"""The `contact-import` command line (Typer + Rich)."""

from __future__ import annotations

from contact_import.cli.app import app, main

__all__ = ["app", "main"]
