#!/usr/bin/env python3
"""Disk-full behaviour of a `hearth` binary (issue 12 item 5), before/after figures.

Usage (as root: it mounts a tmpfs):

    python3 benches/disk_full.py BINARY [EVENTS]

Starts BINARY on a 256 MB tmpfs data directory with default settings, creates the owner and a
project over HTTP, sends one event, fills the tmpfs, then sends EVENTS (default 2000) events
with the DSN key and counts the answers by status, the server's log lines and how many per
second, and what /health/ready says. Then it frees the space and waits up to 30 s for an event
to be accepted again without a restart. Prints one summary; nothing is left mounted.
"""

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(method, url, body=None, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()
    except Exception as e:  # connection refused, reset, timeout
        return 0, {}, str(e).encode()


def fill(path):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for chunk in (1 << 20, 4096, 1):
            buf = b"\xa5" * chunk
            while True:
                try:
                    if os.write(fd, buf) == 0:
                        break
                except OSError:
                    break
        try:
            os.fsync(fd)
        except OSError:
            pass
    finally:
        os.close(fd)


def main():
    binary = os.path.abspath(sys.argv[1])
    events = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    mnt = tempfile.mkdtemp(prefix="hearth-diskfull-")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256m", "tmpfs", mnt], check=True)
    server = None
    try:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        cfg = os.path.join(mnt, "config.toml")
        with open(cfg, "w") as f:
            f.write(
                f'[server]\nlisten = "127.0.0.1:{port}"\npublic_url = "{base}"\n\n'
                f'[storage]\ndata_dir = "{mnt}/data"\n'
            )
        log_path = os.path.join(tempfile.gettempdir(), f"hearth-diskfull-{port}.log")
        log = open(log_path, "w")
        server = subprocess.Popen(
            [binary, "--config", cfg, "serve"], stdout=log, stderr=subprocess.STDOUT, cwd=mnt
        )
        deadline = time.time() + 60
        while request("GET", base + "/health/ready")[0] != 200:
            if time.time() > deadline or server.poll() is not None:
                sys.exit(f"server did not start; log: {log_path}")
            time.sleep(0.1)
        token = None
        while token is None and time.time() < deadline:
            m = re.search(r"/setup\?token=([0-9a-f]+)", open(log_path).read())
            token = m and m.group(1)
            time.sleep(0.05)
        st, h, _ = request(
            "POST",
            base + "/api/auth/setup",
            {"token": token, "email": "o@example.com", "name": "O", "password": "a long password"},
            {"Origin": base},
        )
        assert st == 200, st
        cookie = h.get("Set-Cookie", h.get("set-cookie", "")).split(";")[0]
        st, _, body = request(
            "POST", base + "/api/projects", {"name": "disk"}, {"Cookie": cookie, "Origin": base}
        )
        assert st == 200, (st, body)
        v = json.loads(body)
        pid, key = v["project"]["id"], v["key"]["public_key"]
        url = f"{base}/api/{pid}/store/?sentry_key={key}"
        ev = lambda i: {"message": f"event {i}", "level": "error", "platform": "python"}
        st, _, _ = request("POST", url, ev(-1))
        assert st == 200, st

        fill(os.path.join(mnt, "filler"))
        lines_before = sum(1 for _ in open(log_path))
        counts = {}
        with_retry_after = 0
        t0 = time.time()
        for i in range(events):
            st, h, _ = request("POST", url, ev(i))
            counts[st] = counts.get(st, 0) + 1
            if any(k.lower() == "retry-after" for k in h):
                with_retry_after += 1
        elapsed = time.time() - t0
        lines = sum(1 for _ in open(log_path)) - lines_before
        ready = request("GET", base + "/health/ready")
        os.remove(os.path.join(mnt, "filler"))
        t1 = time.time()
        recovered = None
        while time.time() - t1 < 30:
            if request("POST", url, ev("after"))[0] == 200:
                recovered = time.time() - t1
                break
            time.sleep(0.2)
        print(f"binary: {binary}")
        print(f"events sent while full: {events} in {elapsed:.1f} s")
        print(f"answers by status: {dict(sorted(counts.items()))} (with Retry-After: {with_retry_after})")
        print(f"log lines while full: {lines} ({lines / max(elapsed, 1e-9):.1f} per second)")
        print(f"/health/ready while full: {ready[0]} {ready[2][:160].decode(errors='replace')}")
        print(
            "after freeing space: "
            + (f"event accepted again after {recovered:.1f} s" if recovered is not None
               else "no event accepted within 30 s (needs a restart)")
        )
        print(f"server log: {log_path}")
    finally:
        if server is not None:
            server.kill()
            server.wait()
        subprocess.run(["umount", "-l", mnt])
        os.rmdir(mnt)


if __name__ == "__main__":
    main()
