"""{{ cookiecutter.project_slug }}: a Flask service that counts hits in Redis."""

from ._version import __version__
from .app import create_app

__all__ = ["__version__", "create_app"]
