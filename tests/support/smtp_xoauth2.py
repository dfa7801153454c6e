"""A real SMTP server that takes only SASL XOAUTH2, as Microsoft 365 and Google do once basic
authentication is off (aiosmtpd on a loopback socket, no TLS: loopback only).

Usage: smtp_xoauth2.py PORT MAILDIR TOKENS AUTHLOG

TOKENS   a file of valid bearer tokens, one a line, read at every AUTH (the test changes it to
         expire a token)
AUTHLOG  every AUTH is appended as "ok USER TOKEN" or "rejected USER TOKEN"

Mail is accepted only after a successful AUTH and stored in MAILDIR (new/), each with an
X-Auth-Token header naming the token its session logged in with.
"""

import base64
import mailbox
import signal
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult


class Xoauth2Only:
    def __init__(self, maildir, tokens, authlog):
        self.box = mailbox.Maildir(maildir, create=True)
        self.tokens = tokens
        self.authlog = authlog
        self.lock = threading.Lock()

    async def auth_XOAUTH2(self, server, args):
        if len(args) > 1:
            raw = args[1].encode()
        else:
            raw = await server.challenge_auth("")
            if not isinstance(raw, bytes):
                return AuthResult(success=False)
            raw = base64.b64encode(raw)
        try:
            fields = base64.b64decode(raw, validate=True).decode().split("\x01")
        except Exception:
            return AuthResult(success=False)
        user = next((f[5:] for f in fields if f.startswith("user=")), "")
        token = next((f[12:] for f in fields if f.startswith("auth=Bearer ")), "")
        with open(self.tokens) as f:
            valid = {line.strip() for line in f if line.strip()}
        ok = token in valid
        with self.lock, open(self.authlog, "a") as log:
            log.write(("ok" if ok else "rejected") + " " + user + " " + token + "\n")
        if not ok:
            return AuthResult(success=False, handled=False, message="535 5.7.3 Authentication unsuccessful")
        return AuthResult(success=True, auth_data=token)

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if not session.authenticated:
            return "530 5.7.57 Client not authenticated to send mail"
        envelope.mail_from = address
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        head = "X-Auth-Token: " + str(session.auth_data) + "\r\n"
        with self.lock:
            self.box.add(head.encode() + envelope.content)
        return "250 OK"


def main():
    port, maildir, tokens, authlog = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    controller = Controller(
        Xoauth2Only(maildir, tokens, authlog),
        hostname="127.0.0.1",
        port=port,
        auth_require_tls=False,
        auth_exclude_mechanism=["PLAIN", "LOGIN"],
    )
    controller.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
