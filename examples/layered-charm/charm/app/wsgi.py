"""The app the layered charm ships inside itself."""


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"Hello from a charm built on the WSGI layer\n"]
