#!/usr/bin/env python3
"""A real SMTP server for Hearth's tests: aiosmtpd (https://aiosmtpd.aio-libs.org).

Every accepted message is parsed with Python's `email` package and saved as
<dir>/<n>.json: envelope, headers, the text/plain and text/html parts, attachments (base64)
and the raw message. Files are written to a temp name and renamed, so a reader never sees
half a file.

  --reject ADDR      answer RCPT TO:<ADDR> with 550 (repeatable)
  --sink             count messages only (benchmarks); print the count on exit
Prints "READY <port>" on stdout once it accepts connections.
"""

import argparse
import base64
import email
import email.policy
import json
import os
import signal
import sys

from aiosmtpd.controller import Controller


class Handler:
    def __init__(self, out_dir, reject, sink):
        self.out_dir = out_dir
        self.reject = {r.lower() for r in reject}
        self.sink = sink
        self.count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in self.reject:
            return "550 5.1.1 <%s>: Recipient address rejected: User unknown" % address
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        n = self.count
        if self.sink:
            return "250 OK queued as %d" % n
        raw = envelope.original_content or envelope.content
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        text = html = None
        attachments = []
        for part in msg.walk():
            if part.is_multipart():
                continue
            disp = part.get_content_disposition()
            ctype = part.get_content_type()
            if disp == "attachment":
                attachments.append({
                    "filename": part.get_filename(),
                    "content_type": ctype,
                    "data_b64": base64.b64encode(part.get_payload(decode=True) or b"").decode(),
                })
            elif ctype == "text/plain" and text is None:
                text = part.get_content()
            elif ctype == "text/html" and html is None:
                html = part.get_content()
        doc = {
            "n": n,
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "headers": [[k, str(v)] for k, v in msg.items()],
            "text": text,
            "html": html,
            "attachments": attachments,
            "raw": raw.decode("utf-8", "replace"),
        }
        tmp = os.path.join(self.out_dir, ".%d.tmp" % n)
        with open(tmp, "w") as f:
            json.dump(doc, f)
        os.rename(tmp, os.path.join(self.out_dir, "%06d.json" % n))
        return "250 OK queued as %d" % n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--dir", default=".")
    ap.add_argument("--reject", action="append", default=[])
    ap.add_argument("--sink", action="store_true")
    args = ap.parse_args()
    handler = Handler(args.dir, args.reject, args.sink)
    controller = Controller(handler, hostname="127.0.0.1", port=args.port,
                            data_size_limit=50 * 1024 * 1024)
    controller.start()
    print("READY %d" % args.port, flush=True)

    def bye(*_):
        controller.stop()
        print("COUNT %d" % handler.count, flush=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, bye)
    signal.signal(signal.SIGINT, bye)
    # Exit when the parent closes our stdin, so a crashed test leaves no server behind.
    try:
        sys.stdin.read()
    except Exception:
        pass
    bye()


if __name__ == "__main__":
    main()
