"""The peer: a minimal FastAPI counter, what many users start a new service with.

One INCR per request through ``redis.asyncio``; served by uvicorn with
httptools + uvloop (bench/run.py starts it). No logs, metrics or error handling,
like the minimal counter.
"""

import os

import redis.asyncio as redis
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

app = FastAPI()
cache = redis.Redis(
    host=os.environ.get("REDIS_HOST", "localhost"), port=int(os.environ.get("REDIS_PORT", "6379"))
)


@app.get("/", response_class=PlainTextResponse)
async def hello() -> str:
    return f"Hello World! I have been seen {await cache.incr('hits')} times.\n"
