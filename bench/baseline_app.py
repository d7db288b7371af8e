"""The baseline: the counter app the course starts from, run with ``flask run``.

One module-level Redis client and an INCR per request, served by Werkzeug's
development server. bench/run.py measures it next to the generated service.
"""

import os
import time

import redis
from flask import Flask

app = Flask(__name__)
cache = redis.Redis(
    host=os.environ.get("REDIS_HOST", "localhost"), port=int(os.environ.get("REDIS_PORT", "6379"))
)


def get_hit_count():
    retries = 5
    while True:
        try:
            return cache.incr("hits")
        except redis.exceptions.ConnectionError:
            if retries == 0:
                raise
            retries -= 1
            time.sleep(0.5)


@app.route("/")
def hello():
    return f"Hello World! I have been seen {get_hit_count()} times.\n"
