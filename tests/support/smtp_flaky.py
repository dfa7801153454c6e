"""A real SMTP server for Haven's failure tests (aiosmtpd on a loopback socket).

Usage: smtp_flaky.py PORT MAILDIR [--fail-first N] [--reject ADDRESS]...

--fail-first N   answer "451 try again later" to the first N messages (at DATA)
--reject ADDR    answer "550 mailbox unavailable" to RCPT TO:<ADDR>

Accepted messages are stored in MAILDIR (new/), each with an X-RcptTo header naming its
envelope recipients, as aiosmtpd's Mailbox handler does.
"""

import argparse
import mailbox
import signal
import threading

from aiosmtpd.controller import Controller


class Flaky:
    def __init__(self, maildir, fail_first, reject):
        self.box = mailbox.Maildir(maildir, create=True)
        self.fail_left = fail_first
        self.reject = {a.lower() for a in reject}
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in self.reject:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            if self.fail_left > 0:
                self.fail_left -= 1
                return "451 4.3.0 try again later"
            head = "X-RcptTo: " + ", ".join(envelope.rcpt_tos) + "\r\n"
            self.box.add(head.encode() + envelope.content)
        return "250 OK"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("port", type=int)
    p.add_argument("maildir")
    p.add_argument("--fail-first", type=int, default=0)
    p.add_argument("--reject", action="append", default=[])
    a = p.parse_args()
    controller = Controller(Flaky(a.maildir, a.fail_first, a.reject), hostname="127.0.0.1", port=a.port)
    controller.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
