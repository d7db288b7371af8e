"""Build information: ``GET /version``."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from ..config import SERVICE_NAME
from ..context import services

blueprint = Blueprint("meta", __name__)


@blueprint.get("/version")
def version() -> dict[str, Any]:
    settings = services().settings
    return {
        "name": SERVICE_NAME,
        "version": settings.app_version,
        "git_sha": settings.git_sha,
        "build_date": settings.build_date,
    }
