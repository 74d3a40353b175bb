"""A small Flask application served by corral.

    pip install 'flask>=3,<4'
    corral serve examples/flask_app/app.py:app --mpm worker --threads 4

Routes: ``/`` (plain text), ``/json`` (JSON), ``/hello/<name>`` (a Jinja template).
"""

import os
from pathlib import Path

from flask import Flask, Response, jsonify, render_template

# root_path is given explicitly so the templates are found whatever name the
# server imports this file under.
app = Flask(__name__, root_path=str(Path(__file__).resolve().parent))


@app.get("/")
def index():
    return Response("Hello from Flask!\n", mimetype="text/plain")


@app.get("/json")
def json_info():
    return jsonify(framework="flask", message="hello", pid=os.getpid(), items=[1, 2, 3])


@app.get("/hello/<name>")
def hello(name):
    return render_template("hello.html", name=name)


# corral's default callable name for a file path is "application".
application = app
