"""The REST API (FastAPI). :func:`create_app` builds it from services: nothing at import time."""

from warroom.api.app import create_app

__all__ = ["create_app"]
