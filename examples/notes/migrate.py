"""provision_command for notes: create the table before the app serves."""
import os
import sys

import psycopg

url = os.environ.get("DATABASE_URL", "")
if not url.startswith(("postgres://", "postgresql://")):
    print("no PostgreSQL database yet; nothing to migrate")
    sys.exit(0)
with psycopg.connect(url, connect_timeout=10, autocommit=True) as conn:
    conn.execute("CREATE TABLE IF NOT EXISTS notes (id serial PRIMARY KEY, text text NOT NULL)")
print("notes table ready")
