"""The HTTP service (FastAPI), built by ``create_app(settings)``; ``lifespan_of`` runs its
startup and shutdown inside the lifespan of an app that mounts it."""

from contact_import.web.app import create_app, lifespan_of

__all__ = ["create_app", "lifespan_of"]
