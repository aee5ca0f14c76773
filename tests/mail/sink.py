"""A mail sink for the tests: an aiosmtpd SMTP server on 127.0.0.1:PORT
that writes each message it accepts to DIR as <n>.eml (the envelope
recipients in an X-Envelope-To line, then the message as received), then
prints "listening PORT". Runs until killed.

    python sink.py PORT DIR
"""

import itertools
import os
import sys
import threading

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, out):
        self.out = out
        self.numbers = itertools.count(1)

    async def handle_DATA(self, server, session, envelope):
        n = next(self.numbers)
        tmp = os.path.join(self.out, f".{n}.tmp")
        with open(tmp, "wb") as f:
            f.write(b"X-Envelope-To: " + ", ".join(envelope.rcpt_tos).encode() + b"\r\n")
            f.write(envelope.original_content or envelope.content)
        # Whole files only: a test reading the folder never sees half a message.
        os.rename(tmp, os.path.join(self.out, f"{n}.eml"))
        return "250 Message accepted for delivery"


def main():
    port, out = int(sys.argv[1]), sys.argv[2]
    os.makedirs(out, exist_ok=True)
    controller = Controller(Sink(out), hostname="127.0.0.1", port=port)
    controller.start()
    print(f"listening {port}", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
