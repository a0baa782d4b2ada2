#!/usr/bin/env python3
"""Small HTTP servers that name themselves, to try the examples of docs/guide.md.

    python3 examples/backends.py 9001 9002 9003     # s1 on :9001, s2 on :9002, s3 on :9003
    python3 examples/backends.py s2=9002            # one named server (stop it alone with Ctrl-C)

Each answers like `switchyard demo`'s servers (src/demo.rs), on 127.0.0.1, with HTTP/1.1
keep-alive:
    /headers   the request head as the server saw it, one `name: value` per line
    /login     sets the cookie JSESSIONID=NAME-N, as a Java application would
    /health    200 ok
    anything   `NAME: METHOD PATH`
and every answer carries `x-server: NAME`. Ctrl-C stops them all. Python's standard
library only.
"""

import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def handler(name):
    logins = [0]
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def answer(self, body, extra=()):
            data = body.encode()
            self.send_response(200)
            self.send_header("x-server", name)
            self.send_header("content-type", "text/plain")
            self.send_header("content-length", str(len(data)))
            for k, v in extra:
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def do_GET(self):
            path = self.path.split("?")[0]
            if path == "/headers":
                head = "".join(f"{k.lower()}: {v}\n" for k, v in self.headers.items())
                self.answer(f"{self.command} {self.path}\n{head}")
            elif path == "/login":
                with lock:
                    logins[0] += 1
                    n = logins[0]
                self.answer(f"{name}: logged in\n", [("set-cookie", f"JSESSIONID={name}-{n}; Path=/")])
            elif path == "/health":
                self.answer("ok\n")
            else:
                self.answer(f"{name}: {self.command} {self.path}\n")

        do_HEAD = do_GET

        def log_message(self, *args):
            pass

    return Handler


def main():
    args = sys.argv[1:] or ["9001", "9002", "9003"]
    servers = []
    for i, arg in enumerate(args):
        name, _, port = arg.rpartition("=")
        name, port = name or f"s{i + 1}", int(port)
        server = ThreadingHTTPServer(("127.0.0.1", port), handler(name))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        print(f"{name} on http://127.0.0.1:{port}/", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
