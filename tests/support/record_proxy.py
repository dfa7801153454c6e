#!/usr/bin/env python3
"""A recording HTTP proxy for the AI tests (tests/support/llama.rs): listens on 127.0.0.1 on a
free port (printed as the first line of stdout), forwards every request to TARGET unchanged,
and appends each request's method, path and body to RECORD, so a test can check what would
have left the school.

    record_proxy.py TARGET RECORD      # TARGET such as http://127.0.0.1:8080
"""
import http.client
import http.server
import sys
import threading
import urllib.parse

TARGET = urllib.parse.urlsplit(sys.argv[1])
RECORD = sys.argv[2]
LOCK = threading.Lock()
HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection", "host"}


class Forward(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def forward(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        with LOCK, open(RECORD, "ab") as f:
            f.write(f"=== {self.command} {self.path}\n".encode())
            f.write(body)
            f.write(b"\n")
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        conn = http.client.HTTPConnection(TARGET.hostname, TARGET.port, timeout=600)
        try:
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        except Exception as e:  # the target is down: say so, as a gateway would
            msg = f"proxy: {e}".encode()
            self.send_response(502)
            self.send_header("Content-Length", str(len(msg)))
            self.end_headers()
            self.wfile.write(msg)
            return
        finally:
            conn.close()
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in HOP and k.lower() != "content-length":
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = forward


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Forward)
print(server.server_address[1], flush=True)
server.serve_forever()
