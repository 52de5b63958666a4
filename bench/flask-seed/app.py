"""
The seed's Flask service (../shared/seed: Flask, Flask-SQLAlchemy, a JWT on every request, gunicorn), reduced to the
route the benchmark compares: GET /projects, a page of projects with their last build status. It reads the same
SQLite file as Usine (the projects table of Usine's schema, timestamps in epoch milliseconds) and verifies Usine's
token with PyJWT, the library flask-jwt-extended is built on (HS256, issuer and audience checked). Started by
bench/flask-seed.ts: gunicorn -w 2, SEED_DB_PATH, JWT_SECRET, JWT_ISSUER and JWT_AUDIENCE in the environment.
"""
import os
from datetime import datetime, timezone
from functools import wraps

import jwt
from flask import Flask, jsonify, request
from flask_sqlalchemy import SQLAlchemy

db = SQLAlchemy()


class Project(db.Model):
    __tablename__ = "projects"
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String, unique=True, nullable=False)
    repo = db.Column(db.String, nullable=False)
    default_branch = db.Column(db.String, nullable=False)
    last_build_status = db.Column(db.String)
    created_at = db.Column(db.Integer, nullable=False)

    def to_dict(self):
        created = datetime.fromtimestamp(self.created_at / 1000, tz=timezone.utc)
        return {
            "id": self.id,
            "name": self.name,
            "repo": self.repo,
            "default_branch": self.default_branch,
            "last_build_status": self.last_build_status,
            "created_at": created.isoformat().replace("+00:00", "Z"),
        }


def jwt_required(view):
    @wraps(view)
    def wrapper(*args, **kwargs):
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return jsonify({"error": "unauthorized"}), 401
        try:
            jwt.decode(
                header[len("Bearer "):],
                os.environ["JWT_SECRET"],
                algorithms=["HS256"],
                issuer=os.environ["JWT_ISSUER"],
                audience=os.environ["JWT_AUDIENCE"],
            )
        except jwt.InvalidTokenError:
            return jsonify({"error": "unauthorized"}), 401
        return view(*args, **kwargs)

    return wrapper


def create_app():
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///" + os.environ["SEED_DB_PATH"]
    db.init_app(app)

    @app.get("/projects")
    @jwt_required
    def list_projects():
        page = request.args.get("page", 1, type=int)
        per_page = request.args.get("per_page", 20, type=int)
        pagination = Project.query.order_by(Project.id).paginate(page=page, per_page=per_page, error_out=False)
        return jsonify(
            {"items": [p.to_dict() for p in pagination.items], "page": page, "per_page": per_page, "total": pagination.total}
        )

    @app.get("/health/ready")
    def health():
        return jsonify({"status": "ok"})

    return app


app = create_app()
