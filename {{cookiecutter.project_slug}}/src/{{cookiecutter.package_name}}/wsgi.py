"""WSGI entry point (``{{ cookiecutter.package_name }}.wsgi:app``), served by gunicorn."""

from .app import create_app
from .config import ConfigError

try:
    app = create_app()
except ConfigError as error:
    # One line naming the setting, no traceback (gunicorn.conf.py checks the same earlier).
    raise SystemExit(f"configuration error: {error}") from None
