"""The framework ceiling: Flask answering without Redis, under the generated gunicorn.conf.py."""

from flask import Flask

app = Flask(__name__)


@app.route("/")
def hello():
    return "Hello World!\n"
