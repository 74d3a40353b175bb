"""flask_json: a Flask app with one JSON route (scenario flask, and the memory scenario)."""
from flask import Flask, jsonify

app = Flask(__name__)


@app.route("/")
def index():
    return jsonify(message="Hello, World!", items=[1, 2, 3], ok=True)


application = app
