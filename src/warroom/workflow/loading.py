"""Finding the user's AutomationEngine by ``module:attribute`` (``--app``, ``WARROOM_APP``)."""

from __future__ import annotations

import importlib
import sys

from warroom.errors import ConfigurationError
from warroom.workflow.engine import AutomationEngine

__all__ = ["load_engine"]


def load_engine(app_path: str) -> AutomationEngine:
    """The AutomationEngine at ``module:attribute`` (the module registers the workflows)."""
    module_name, _, attribute = app_path.partition(":")
    if not module_name or not attribute:
        raise ConfigurationError(
            f"app {app_path!r} must be module:attribute, e.g. myjobs.workflows:engine"
        )
    if "" not in sys.path:
        sys.path.insert(0, "")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(f"cannot import {module_name!r} for the app: {exc}") from exc
    engine = getattr(module, attribute, None)
    if not isinstance(engine, AutomationEngine):
        raise ConfigurationError(f"{app_path!r} is not an AutomationEngine")
    return engine
