"""A notes app: rows through PostgreSQL (DATABASE_URL), documents through
MongoDB (MONGO_URL).

/                   200 always: how many notes, or "no database"
/add?text=T         insert a note in PostgreSQL, answer with what the server stored
/notes              every note, with the server's view of who we are (JSON)
/mongo?text=T       insert a document through MONGO_URL and find it back (JSON)
/forwarded          the client address and scheme gunicorn derived
"""
import json
import os
from urllib.parse import parse_qs

import psycopg


def _send(start_response, body, status="200 OK", ctype="text/plain; charset=utf-8"):
    data = body.encode()
    start_response(status, [("Content-Type", ctype), ("Content-Length", str(len(data)))])
    return [data]


def _connect():
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        return None
    return psycopg.connect(url, connect_timeout=5, autocommit=True)


def _ensure_table(conn):
    conn.execute("CREATE TABLE IF NOT EXISTS notes (id serial PRIMARY KEY, text text NOT NULL)")


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    query = parse_qs(environ.get("QUERY_STRING", ""))
    try:
        if path == "/":
            conn = _connect()
            if conn is None:
                return _send(start_response, "notes: no database\n")
            with conn:
                _ensure_table(conn)
                (n,) = conn.execute("SELECT count(*) FROM notes").fetchone()
            return _send(start_response, "notes: %d in PostgreSQL\n" % n)
        if path == "/add":
            conn = _connect()
            if conn is None:
                return _send(start_response, "no database\n", "503 Service Unavailable")
            with conn:
                _ensure_table(conn)
                text = query.get("text", [""])[0]
                row = conn.execute(
                    "INSERT INTO notes (text) VALUES (%s) RETURNING id, text", (text,)
                ).fetchone()
            return _send(start_response, json.dumps({"id": row[0], "text": row[1]}) + "\n",
                         ctype="application/json")
        if path == "/notes":
            conn = _connect()
            if conn is None:
                return _send(start_response, "no database\n", "503 Service Unavailable")
            with conn:
                _ensure_table(conn)
                who = conn.execute("SELECT current_user, current_database(), version()").fetchone()
                rows = conn.execute("SELECT id, text FROM notes ORDER BY id").fetchall()
            body = {"user": who[0], "database": who[1], "server": who[2],
                    "notes": [{"id": i, "text": t} for i, t in rows]}
            return _send(start_response, json.dumps(body) + "\n", ctype="application/json")
        if path == "/mongo":
            import pymongo

            url = os.environ.get("MONGO_URL")
            if not url:
                return _send(start_response, "no MONGO_URL\n", "503 Service Unavailable")
            client = pymongo.MongoClient(url, serverSelectionTimeoutMS=5000)
            try:
                db = client.get_default_database(default="notes")
                text = query.get("text", [""])[0]
                inserted = db.notes.insert_one({"text": text}).inserted_id
                found = db.notes.find_one({"_id": inserted})
            finally:
                client.close()
            return _send(start_response, json.dumps({"id": str(inserted), "text": found["text"]}) + "\n",
                         ctype="application/json")
        if path == "/forwarded":
            info = {"remote_addr": environ.get("REMOTE_ADDR"), "scheme": environ.get("wsgi.url_scheme")}
            return _send(start_response, json.dumps(info) + "\n", ctype="application/json")
        return _send(start_response, "not found\n", "404 Not Found")
    except Exception as e:  # a test app: say what failed, keep serving
        return _send(start_response, "error: %s: %s\n" % (type(e).__name__, e), "500 Internal Server Error")
