"""CPU per request of a WSGI app called in-process, without any server: the app's own cost.

Run by bench/run.py with the bench venv: ``python inprocess.py module:app [calls]``. Calls
``GET /`` through the WSGI interface (real Redis from REDIS_HOST/REDIS_PORT), logging to
/dev/null, and prints JSON: the best of three rounds of process CPU per call. Server
CPU/request minus this is what the server itself costs per request.
"""

from __future__ import annotations

import importlib
import io
import json
import os
import sys
import time


def main(target: str, calls: int) -> None:
    # The request log line is still formatted and written, just not kept.
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    module, _, attribute = target.partition(":")
    app = getattr(importlib.import_module(module), attribute)
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/",
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }

    def start_response(status: str, headers: list, exc_info: object = None) -> None:
        return None

    def one() -> None:
        body = app({**environ, "wsgi.input": io.BytesIO(b"")}, start_response)
        b"".join(body)
        getattr(body, "close", lambda: None)()

    for _ in range(300):  # warm-up: connections, caches
        one()
    rounds = []
    for _ in range(3):
        started = time.process_time()
        for _ in range(calls):
            one()
        rounds.append((time.process_time() - started) / calls * 1e6)
    print(json.dumps({"cpu_us_per_call": min(rounds), "rounds": rounds}), file=sys.__stdout__)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 3000)
