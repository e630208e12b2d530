"""The plain hello-world WSGI app, with a few test paths.

/              Hello, <GREETING or World>!
/env?name=X    the value of environment variable X (to see config reach the app)
/pid           the worker's pid and its master's
/forwarded     the client address and scheme gunicorn derived (through a proxy)
"""
import json
import os
from urllib.parse import parse_qs


def _send(start_response, body, status="200 OK", ctype="text/plain; charset=utf-8"):
    data = body.encode()
    start_response(status, [("Content-Type", ctype), ("Content-Length", str(len(data)))])
    return [data]


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    query = parse_qs(environ.get("QUERY_STRING", ""))
    if path == "/":
        return _send(start_response, "Hello, %s!\n" % os.environ.get("GREETING", "World"))
    if path == "/env":
        name = query.get("name", [""])[0]
        if name not in os.environ:
            return _send(start_response, "unset\n", "404 Not Found")
        return _send(start_response, os.environ[name] + "\n")
    if path == "/pid":
        return _send(start_response, "%d %d\n" % (os.getpid(), os.getppid()))
    if path == "/forwarded":
        info = {"remote_addr": environ.get("REMOTE_ADDR"), "scheme": environ.get("wsgi.url_scheme")}
        return _send(start_response, json.dumps(info) + "\n", ctype="application/json")
    return _send(start_response, "not found\n", "404 Not Found")


def other(environ, start_response):
    """A second app in the module, to switch `wsgi_module` to wsgi:other."""
    return _send(start_response, "Other app\n")
