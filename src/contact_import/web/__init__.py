"""The HTTP service (FastAPI), built by ``create_app(settings)``."""

from contact_import.web.app import create_app

__all__ = ["create_app"]
