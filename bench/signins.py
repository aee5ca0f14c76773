#!/usr/bin/env python3
"""20 concurrent browser sign-ins in a loop, for the "poll p99 during
sign-ins" figure: each loop GETs /login (session cookie + CSRF token), then
POSTs the form, alternating the right and a wrong password (both cost one
bcrypt verification on the server). Runs for SECONDS, then prints counts.

    signins.py HOST PORT EMAIL PASSWORD SECONDS [LOOPS]
"""
import collections
import http.client
import re
import sys
import threading
import time
import urllib.parse

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def loop(host, port, email, password, deadline, counts, lock, n):
    conn = http.client.HTTPConnection(host, port, timeout=30)
    k = n
    while time.monotonic() < deadline:
        try:
            conn.request("GET", "/login")
            r = conn.getresponse()
            page = r.read().decode()
            cookie = r.getheader("Set-Cookie", "").split(";", 1)[0]
            token = CSRF.search(page).group(1)
            pw = password if k % 2 == 0 else password + "-wrong"
            k += 1
            body = urllib.parse.urlencode({"email": email, "password": pw, "csrf_token": token})
            conn.request("POST", "/login", body=body, headers={
                "Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie})
            r = conn.getresponse()
            r.read()
            key = str(r.status)
        except Exception as e:  # counted, never fatal: the figure is the poll's
            key = type(e).__name__
            conn.close()
            conn = http.client.HTTPConnection(host, port, timeout=30)
        with lock:
            counts[key] += 1


def main():
    host, port, email, password, seconds = sys.argv[1:6]
    loops = int(sys.argv[6]) if len(sys.argv) > 6 else 20
    deadline = time.monotonic() + float(seconds)
    counts, lock = collections.Counter(), threading.Lock()
    threads = [threading.Thread(target=loop, args=(host, int(port), email, password, deadline,
                                                    counts, lock, n)) for n in range(loops)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(" ".join(f"{k}:{v}" for k, v in sorted(counts.items())))


if __name__ == "__main__":
    main()
