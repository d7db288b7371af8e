"""Set-up shared by unit and integration tests."""

import logging
import os

import pytest

# prometheus_client picks multiprocess mode when it is imported; the unit tests
# run in one process, so a PROMETHEUS_MULTIPROC_DIR left in the shell must not leak in.
os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)


@pytest.fixture(autouse=True)
def _restore_root_logger():
    # create_app() installs handlers on the root logger that write to the streams
    # of the test that built it; do not let them outlive that test.
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
