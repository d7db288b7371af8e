"""HTTP endpoints, one blueprint per concern."""

from .counter import blueprint as counter
from .health import blueprint as health
from .meta import blueprint as meta

__all__ = ["counter", "health", "meta"]
