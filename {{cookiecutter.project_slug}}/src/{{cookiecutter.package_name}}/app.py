"""The application factory."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from . import blueprints
from .blueprints.counter import inject_failure
from .config import Settings, load_settings, settings_from_mapping
from .context import EXTENSION_KEY, AppServices
from .errors import register_error_handlers
from .logging_setup import configure_logging
from .metrics import init_metrics
from .request_hooks import init_request_hooks
from .store import CounterStore

# Request bodies are at most {"by": N}; anything larger is refused with 413 before it
# is read into memory.
MAX_BODY_BYTES = 16 * 1024


def create_app(
    config: Settings | Mapping[str, Any] | None = None, *, store: CounterStore | None = None
) -> Flask:
    """Build the app.

    ``config``: None reads the environment and $CONFIG_FILE; a Settings is used as
    is; a mapping of Settings field names overrides the defaults (environment not
    read). ``store`` replaces the Redis store built from the settings (tests).
    Raises ConfigError for invalid settings.
    """
    if config is None:
        settings = load_settings()
    elif isinstance(config, Settings):
        settings = config
    else:
        settings = settings_from_mapping(config)

    # Before Flask creates app.logger, so Flask does not add a handler of its own.
    configure_logging(settings.log_level, settings.log_format)

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    metrics = init_metrics(app, settings)
    app.extensions[EXTENSION_KEY] = AppServices(
        settings=settings, store=store or CounterStore.from_settings(settings), metrics=metrics
    )
    init_request_hooks(app, settings, metrics)
    register_error_handlers(app)
    app.register_blueprint(blueprints.counter)
    if settings.failure_rate > 0:
        app.before_request_funcs.setdefault(blueprints.counter.name, []).append(inject_failure)
    app.register_blueprint(blueprints.health)
    app.register_blueprint(blueprints.meta)
    return app
