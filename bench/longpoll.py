#!/usr/bin/env python3
"""The two long-poll figures: raw HTTP/1.1 over asyncio, one connection per
waiting poll. Prints one JSON line for bench/run to record.

    longpoll.py latency HOST PORT EMAIL PASSWORD [CLIS]
    longpoll.py hold HOST PORT DEVICE_CODES SERVER_PID PSQL DB_URL [POLLS]

latency: sign in once as a browser, start CLIS (default 1,000) sessions
through the API, hold one `wait=30` poll per session, let them settle for
1 s (the server has no public count of held polls), then approve the
sessions one after another through POST /device/complete on one keep-alive
connection. Per session: t_sent (approval written), t_ok (its 200 read) and
t_token (the waiting poll's approved answer read). Reports t_token - t_sent
and t_token - t_ok (negative when the poll's answer arrives first: NOTIFY is
delivered at commit, before the approval's answer is written).

hold: POLLS (default 10,000) concurrent `wait=30` polls on distinct seeded
pending sessions from DEVICE_CODES, opened in batches of 500, then held until
the server answers them after the wait. The load runs before may have left
some sessions at a grown poll interval (slow_down), which the server stores
and would answer with another slow_down, so sessions still at the 1-s
interval come first: their device-code HMAC (CODE_HMAC_KEY from the
environment, as seed.py computes it) is matched against the database. Meanwhile
samples the server's VmRSS and its connections in pg_stat_activity every
0.25 s. Reports the peak number open at once, peak RSS, errors, answers, how
late each answer came after its wait, and the database connections (total and
busy, i.e. state <> 'idle') during the ramp and during the hold.
"""
import asyncio
import base64
import collections
import hashlib
import hmac
import json
import math
import os
import re
import resource
import sys
import time
import urllib.parse

WAIT = 30
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
now = time.perf_counter


# ---------------------------------------------------------------- HTTP/1.1

def request(method, path, host, body=b"", headers=None, close=False):
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def post_json(path, host, obj, headers=None, close=False):
    h = {"Content-Type": "application/json", **(headers or {})}
    return request("POST", path, host, json.dumps(obj).encode(), h, close)


async def read_response(reader):
    """(status, headers as a list of (lowercase name, value), body)."""
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status = int(head[0].split(" ", 2)[1])
    headers = [(k.strip().lower(), v.strip()) for k, _, v in
               (line.partition(":") for line in head[1:] if line)]
    h = dict(headers)
    if h.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            body += chunk[:-2]
    elif "content-length" in h:
        body = await reader.readexactly(int(h["content-length"]))
    else:
        body = await reader.read()
    return status, headers, body


def session_cookie(headers, old):
    """The newest envshield_session cookie among Set-Cookie headers, else old."""
    for k, v in headers:
        if k == "set-cookie" and v.startswith("envshield_session="):
            old = v.split(";", 1)[0]
    return old


class Conn:
    """One keep-alive connection, one request at a time."""

    def __init__(self, host, port):
        self.host, self.port = host, port
        self.reader = self.writer = None

    async def send(self, raw):
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.writer.write(raw)
        await self.writer.drain()

    async def receive(self):
        return await read_response(self.reader)

    async def call(self, raw):
        await self.send(raw)
        return await self.receive()

    def close(self):
        if self.writer is not None:
            self.writer.close()


# ---------------------------------------------------------------- waiting polls

class Poll:
    """One waiting poll on its own connection."""
    __slots__ = ("code", "t_written", "t_answer", "status", "body", "error", "task")

    def __init__(self, code):
        self.code = code
        self.t_written = self.t_answer = self.status = self.body = self.error = None
        self.task = None


class Counter:
    """Polls written and not yet answered, and the most at once."""

    def __init__(self):
        self.open = self.peak = 0

    def up(self):
        self.open += 1
        self.peak = max(self.peak, self.open)

    def down(self):
        self.open -= 1


async def await_answer(poll, reader, writer, counter):
    try:
        poll.status, _, poll.body = await asyncio.wait_for(read_response(reader), WAIT + 30)
        poll.t_answer = now()
    except Exception as e:  # counted by the caller
        poll.error = type(e).__name__
    finally:
        counter.down()
        writer.close()


async def open_polls(host, port, codes, batch, counter):
    """Connects and writes one `wait` poll per code, `batch` connections at a
    time; each answer is read by its own task."""
    hostport = f"{host}:{port}"
    polls = [Poll(c) for c in codes]
    for i in range(0, len(polls), batch):
        group = polls[i:i + batch]
        conns = await asyncio.gather(*(asyncio.open_connection(host, port) for _ in group),
                                     return_exceptions=True)
        for poll, conn in zip(group, conns):
            if isinstance(conn, BaseException):
                poll.error = "connect:" + type(conn).__name__
                continue
            reader, writer = conn
            writer.write(post_json("/api/v1/cli/auth/device/poll", hostport,
                                   {"deviceCode": poll.code, "wait": WAIT}, close=True))
            poll.t_written = now()
            counter.up()
            poll.task = asyncio.create_task(await_answer(poll, reader, writer, counter))
        await asyncio.sleep(0)
    return polls


def pct(values, q):
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


def summary_ms(values):
    return {k: (round(v * 1000, 2) if v is not None else None) for k, v in
            (("p50", pct(values, 0.5)), ("p99", pct(values, 0.99)),
             ("min", min(values, default=None)), ("max", max(values, default=None)))}


def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if soft != resource.RLIM_INFINITY and soft < need:
            sys.exit(f"longpoll.py: open-file limit {soft} < {need} needed (raise ulimit -n)")


# ---------------------------------------------------------------- latency

async def sign_in(api, hostport, email, password):
    status, headers, page = await api.call(request("GET", "/login", hostport))
    if status != 200:
        raise RuntimeError(f"GET /login answered {status}")
    cookie = session_cookie(headers, "")
    csrf = CSRF.search(page.decode()).group(1)
    form = urllib.parse.urlencode({"email": email, "password": password,
                                   "csrf_token": csrf}).encode()
    status, headers, _ = await api.call(request("POST", "/login", hostport, form, {
        "Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie}))
    if status != 303:
        raise RuntimeError(f"POST /login answered {status}")
    return session_cookie(headers, cookie)


async def start_sessions(host, port, n, workers=8):
    hostport = f"{host}:{port}"
    out = [None] * n
    todo = iter(range(n))

    async def worker():
        conn = Conn(host, port)
        for i in todo:
            status, _, body = await conn.call(post_json(
                "/api/v1/cli/auth/device/start", hostport, {"tokenName": "bench"}))
            if status != 200:
                raise RuntimeError(f"start answered {status}: {body[:200]!r}")
            out[i] = json.loads(body)
        conn.close()

    await asyncio.gather(*(worker() for _ in range(workers)))
    return out


async def latency(host, port, email, password, n):
    raise_nofile(n + 200)
    hostport = f"{host}:{port}"
    origin = f"http://{host}:{port}"
    api = Conn(host, port)
    cookie = await sign_in(api, hostport, email, password)
    sessions = await start_sessions(host, port, n)

    counter = Counter()
    t_open = now()
    polls = await open_polls(host, port, [s["deviceCode"] for s in sessions], 250, counter)
    open_s = now() - t_open
    # Bounded readiness step: no public count of held polls, so 1 s for the
    # server to read every poll and start waiting.
    settle = 1.0
    await asyncio.sleep(settle)
    early = sum(1 for p in polls if p.t_answer is not None or p.error is not None)

    sent, ok, approve_errors = [None] * n, [None] * n, collections.Counter()
    t_first = now()
    for i, s in enumerate(sessions):
        raw = post_json("/api/v1/cli/auth/device/complete", hostport,
                        {"userCode": s["userCode"], "decision": "approve"},
                        {"Cookie": cookie, "Origin": origin})
        try:
            await api.send(raw)
            sent[i] = now()
            status, headers, body = await api.receive()
            ok[i] = now()
            cookie = session_cookie(headers, cookie)
            if status != 200:
                approve_errors[f"approve:{status}"] += 1
        except Exception as e:
            approve_errors["approve:" + type(e).__name__] += 1
            api.close()
            api = Conn(host, port)
    approvals_s = now() - t_first
    await asyncio.gather(*(p.task for p in polls if p.task))
    api.close()

    errors = collections.Counter(approve_errors)
    to_token, ok_to_token = [], []
    for i, p in enumerate(polls):
        if p.error:
            errors["poll:" + p.error] += 1
            continue
        body = json.loads(p.body or b"{}")
        if p.status != 200 or body.get("status") != "approved" \
                or not str(body.get("token", "")).startswith("esh_"):
            errors[f"poll:{p.status}:{body.get('status')}"] += 1
            continue
        if sent[i] is None or p.t_answer < sent[i]:
            errors["poll:answered before its approval"] += 1
            continue
        to_token.append(p.t_answer - sent[i])
        if ok[i] is not None:
            ok_to_token.append(p.t_answer - ok[i])
    print(json.dumps({
        "kind": "longpoll_latency", "clis": n, "wait_s": WAIT, "settle_s": settle,
        "peak_open": counter.peak, "answered_before_approvals": early,
        "open_s": round(open_s, 3), "approvals_s": round(approvals_s, 3),
        "delivered": len(to_token), "errors": n - len(to_token), "error_kinds": dict(errors),
        "sent_to_token_ms": summary_ms(to_token),
        "ok_to_token_ms": summary_ms(ok_to_token),
        "approve_ms": summary_ms([o - s for s, o in zip(sent, ok) if s and o]),
    }))


# ---------------------------------------------------------------- hold

def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def nofile_of(pid):
    with open(f"/proc/{pid}/limits") as f:
        for line in f:
            if line.startswith("Max open files"):
                v = line.split()[3]
                return math.inf if v == "unlimited" else int(v)
    return math.inf


DB_QUERY = ("SELECT count(*) || ' ' || count(*) FILTER (WHERE state <> 'idle') "
            "FROM pg_stat_activity WHERE datname = current_database() "
            "AND backend_type = 'client backend' AND pid <> pg_backend_pid()")


async def db_sample(psql, db_url):
    """(total, busy) connections to the server's database, this one excluded."""
    total, busy = await psql_lines(psql, db_url, DB_QUERY)
    return int(total), int(busy)


async def psql_lines(psql, db_url, query):
    proc = await asyncio.create_subprocess_exec(
        psql, "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", db_url, "-c", query,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"psql failed: {err.decode().strip()}")
    return out.decode().split()


async def pick_codes(psql, db_url, codes_path, n):
    """n seeded device codes, those still at the 1-s poll interval first;
    returns (codes, how many of them are at a grown interval)."""
    key = base64.b64decode(os.environ["CODE_HMAC_KEY"])
    with open(codes_path) as f:
        codes = [line.strip() for line in f if line.strip()]
    if len(codes) < n:
        sys.exit(f"longpoll.py: {codes_path} has {len(codes)} device codes, {n} needed")
    base = set(await psql_lines(psql, db_url, (
        "SELECT encode(device_code_hash, 'hex') FROM cli_device_sessions "
        "WHERE token_name = 'bench session' AND status = 'PENDING' "
        "AND poll_interval_sec <= 1 AND expires_at > now() + interval '5 minutes'")))

    def at_base(code):
        digest = hmac.new(key, b"device-code\0" + code.encode(), hashlib.sha256).hexdigest()
        return digest in base

    first = [c for c in codes if at_base(c)]
    rest = [c for c in codes if not at_base(c)]
    return (first + rest)[:n], max(0, n - len(first))


async def hold(host, port, codes_path, server_pid, psql, db_url, n):
    raise_nofile(n + 200)
    if nofile_of(server_pid) < n + 200:
        sys.exit(f"longpoll.py: the server's open-file limit {nofile_of(server_pid)} "
                 f"< {n + 200} (raise ulimit -n before it starts)")
    codes, slowed_used = await pick_codes(psql, db_url, codes_path, n)

    rss_idle = rss_kb(server_pid)
    rss, db = [], []  # (t, kB); (t, total, busy)
    stop = asyncio.Event()

    async def sample_rss():
        while not stop.is_set():
            rss.append((now(), rss_kb(server_pid)))
            await asyncio.sleep(0.25)

    async def sample_db():
        while not stop.is_set():
            t = now()
            total, busy = await db_sample(psql, db_url)
            db.append((t, total, busy))
            await asyncio.sleep(max(0.0, 0.25 - (now() - t)))

    samplers = [asyncio.create_task(sample_rss()), asyncio.create_task(sample_db())]
    await asyncio.sleep(0.5)  # a few samples before the first poll

    counter = Counter()
    t0 = now()
    polls = await open_polls(host, port, codes, 500, counter)
    t_sent = now()
    open_at_sent = counter.open
    await asyncio.gather(*(p.task for p in polls if p.task))
    t_end = now()
    await asyncio.sleep(1.0)  # memory kept once the polls are gone
    stop.set()
    await asyncio.gather(*samplers)
    rss_after = rss_kb(server_pid)

    errors, lag, answers = collections.Counter(), [], 0
    for p in polls:
        if p.error:
            errors[p.error] += 1
            continue
        answers += 1
        body = json.loads(p.body or b"{}")
        waited = p.t_answer - p.t_written
        if p.status != 200 or body.get("status") != "pending":
            errors[f"{p.status}:{body.get('status')}"] += 1
        elif waited < WAIT - 0.5:
            errors["pending before the wait was up"] += 1
        else:
            lag.append(waited - WAIT)
    # Each poll answers WAIT s after the server started holding it, so the
    # hold is from the last poll's start (answer - WAIT) to the first answer,
    # with 0.5 s margins; the ramp is everything before.
    held = [p for p in polls if p.t_answer is not None and not p.error
            and p.t_answer - p.t_written >= WAIT - 0.5]
    answered = [p.t_answer for p in held] or [t_end]
    hold_from, hold_to = max(answered) - WAIT + 0.5, min(answered) - 0.5

    def busy_max(a, b):
        return max((busy for t, _, busy in db if a <= t < b), default=None)

    print(json.dumps({
        "kind": "longpoll_hold", "polls": n, "wait_s": WAIT, "batch": 500,
        "sent": sum(1 for p in polls if p.t_written), "peak_open": counter.peak,
        "open_when_all_sent": open_at_sent, "ramp_s": round(t_sent - t0, 3),
        "total_s": round(t_end - t0, 3),
        "answers": answers, "errors": sum(errors.values()), "error_kinds": dict(errors),
        "answer_lag_ms": summary_ms(lag),
        "rss_idle_kb": rss_idle, "rss_max_kb": max((k for _, k in rss), default=0),
        "rss_after_kb": rss_after, "rss_samples": len(rss),
        "grown_interval_sessions_used": slowed_used,
        "db_total_max": max((total for _, total, _ in db), default=None),
        "db_total_min": min((total for _, total, _ in db), default=None),
        "hold_s": round(hold_to - hold_from, 3),
        "db_busy_max_ramp": busy_max(t0, hold_from),
        "db_busy_max_hold": busy_max(hold_from, hold_to),
        "db_samples_hold": sum(1 for t, _, _ in db if hold_from <= t < hold_to),
        "db_samples": len(db),
        "pool_size": int(os.environ.get("DATABASE_POOL_SIZE") or 10),
    }))


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in ("latency", "hold"):
        sys.exit(__doc__)
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "latency":
        host, port, email, password = args[:4]
        n = int(args[4]) if len(args) > 4 else 1000
        asyncio.run(latency(host, int(port), email, password, n))
    else:
        host, port, codes, pid, psql, db_url = args[:6]
        n = int(args[6]) if len(args) > 6 else 10000
        asyncio.run(hold(host, int(port), codes, int(pid), psql, db_url, n))


if __name__ == "__main__":
    main()
