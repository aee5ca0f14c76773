#!/usr/bin/env python3
"""Renders bench/run's results (JSON lines) as the Markdown table it prints.

    report.py RESULTS_JSONL LOGS_DIR MODE DURATION CONNECTIONS THREADS
              POLL_SESSIONS SIGNIN_LOOPS "LEVELS" BASE_USERS
"""
import json
import os
import re
import subprocess
import sys
import time


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()
    except OSError:
        return ""


def mib(kb):
    return f"{kb / 1024:.1f} MiB"


def rate(w):
    return w["requests"] / w["duration_us"] * 1e6


def ms(us):
    return f"{us / 1000:.2f}"


def errors(w):
    sock = w["connect"] + w["read"] + w["write"] + w["timeout"]
    return f"{sock} / {w['status']}"


def f2(v):
    return "—" if v is None else f"{v:.2f}"


def kinds(r):
    k = r.get("error_kinds") or {}
    return " (" + ", ".join(f"{n} × {v}" for v, n in sorted(k.items())) + ")" if k else ""


def level_name(n):
    return f"{n // 1000}k" if n < 1_000_000 else f"{n // 1_000_000}M"


def main():
    (path, logs, mode, duration, conns, threads, poll_sessions, loops, levels,
     base_users) = sys.argv[1:11]
    rows = [json.loads(line) for line in open(path) if line.strip()]
    levels = [int(x) for x in levels.split()]
    base = levels[0]

    def get(kind, name=None, level=None):
        for r in rows:
            if r["kind"] == kind and (name is None or r.get("name") == name) \
                    and (level is None or r.get("level") == level):
                return r
        return None

    def wrk(name, level):
        r = get("wrk", name, level)
        return r["wrk"] if r else None

    def tps(name, level):
        r = get("pgbench", name, level)
        return r["tps"] if r else None

    def ceil_lat(name, level):
        r = get("pgbench", name, level)
        return f" (p50 {ms(r['p50_us'])}, p99 {ms(r['p99_us'])} ms)" if r and "p99_us" in r else ""

    cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip()
    mem_kb = int(re.search(r"MemTotal:\s+(\d+)", open("/proc/meminfo").read()).group(1))
    out = []
    p = out.append
    p(f"# EnvShield Auth benchmark ({mode} run, {time.strftime('%Y-%m-%d %H:%M %Z')})")
    p("")
    p(f"- machine: {os.cpu_count()} cores (`nproc`: {sh('nproc')}), {cpu}, "
      f"{mem_kb / 1024 / 1024:.1f} GiB RAM; {sh('uname -sr')}")
    p(f"- software: {sh('ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1')}/postgres "
      f"({sh('$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)/postgres --version')}), "
      f"{sh('wrk -v 2>&1 | head -n1')}, server at `{sh('git -C ' + os.path.dirname(os.path.abspath(__file__)) + ' describe --always --dirty')}`")
    load = get("load")
    if load:
        p(f"- load average (1/5/15 min) at start {load['start']}, at end {load['end']}: "
          "anything else running on the machine shares the same cores")
    p(f"- command: `bench/run{'' if mode == 'full' else ' --' + mode}`; load: `wrk -c {conns} -t {threads} "
      f"-d {duration}s` on loopback; ceilings: `pgbench -c {conns} -j {threads} -T {duration}` "
      "on the same cluster, just before the figure")
    workers = os.environ.get("WORKERS") or f"default ({os.cpu_count()}, one per core)"
    pool = os.environ.get("DATABASE_POOL_SIZE") or "default (10)"
    p(f"- server: release build, WORKERS {workers}, DATABASE_POOL_SIZE {pool}, rate limits off, "
      f"DEVICE_CODE_INTERVAL_SEC=1, BCRYPT_COST {os.environ.get('BCRYPT_COST') or 'default (12)'}, "
      f"BEARER_CACHE_MS {os.environ.get('BEARER_CACHE_MS') or 'default (1000)'}, "
      f"POLL_CACHE_SEC {os.environ.get('POLL_CACHE_SEC') or 'default (30)'}, "
      "LOG_FORMAT=json RUST_LOG=warn")
    p("")

    p(f"## Hot paths ({level_name(base)} rows)")
    p("")
    p("| path | req/s | p50 ms | p99 ms | socket errors / non-2xx | ceiling in the same run | ratio | target | met |")
    p("| --- | ---: | ---: | ---: | ---: | --- | ---: | --- | --- |")
    sel = tps("select_ceiling", base)
    ins = tps("insert_ceiling", base)
    for label, name, ceil, ceil_name, p99_target in [
        ("`GET /api/v1/cli/whoami` (valid token)", "whoami", sel, "`pgbench -S`", True),
        ("`POST .../device/poll` (pending)", "poll", sel, "`pgbench -S`", True),
        ("`POST .../device/start`", "start", ins, "pgbench insert-only", False),
    ]:
        w = wrk(name, base)
        if not w or not ceil:
            p(f"| {label} | — | — | — | — | — | — | — | not run |")
            continue
        ratio = rate(w) / ceil
        ok = ratio >= 0.5 and (not p99_target or w["p99_us"] <= 10_000)
        target = "≥ 0.5× ceiling, p99 ≤ 10 ms" if p99_target else "≥ 0.5× ceiling"
        misses = []
        if ratio < 0.5:
            misses.append("ratio")
        if p99_target and w["p99_us"] > 10_000:
            misses.append("p99")
        met = "yes" if ok else "**no** (" + ", ".join(misses) + ")"
        p(f"| {label} | {rate(w):.0f} | {ms(w['p50_us'])} | {ms(w['p99_us'])} | {errors(w)} | "
          f"{ceil_name} {ceil:.0f} TPS{ceil_lat('select_ceiling' if p99_target else 'insert_ceiling', base)} | "
          f"{ratio:.2f} | {target} | {met} |")
    w, fl = wrk("poll_flood", base), get("flood", level=base)
    if w and sel:
        ok = w["p99_us"] <= 10_000
        p(f"| `POST .../device/poll` (slow_down flood, {fl['sessions'] if fl else '?'} sessions) | "
          f"{rate(w):.0f} | {ms(w['p50_us'])} | {ms(w['p99_us'])} | {errors(w)} | "
          f"`pgbench -S` {sel:.0f} TPS | {rate(w) / sel:.2f} | p99 ≤ 10 ms | "
          f"{'yes' if ok else '**no** (p99)'} |")
    w, jti = wrk("whoami_dpop", base), tps("jti_ceiling", base)
    if w and jti:
        p(f"| `GET /api/v1/cli/whoami` (DPoP-bound token, a proof used once per request) | {rate(w):.0f} | "
          f"{ms(w['p50_us'])} | {ms(w['p99_us'])} | {errors(w)} | jti insert-only {jti:.0f} TPS"
          f"{ceil_lat('jti_ceiling', base)} | {rate(w) / jti:.2f} | — (measured) | — |")
    p("")
    p(f"Where the {os.cpu_count()} cores went during each run (CPU time of the server process, and of "
      "the cluster's postmaster and its children; the rest is wrk, the kernel and idle):")
    p("")
    p("| run | server CPU | postgres CPU | server µs/req | postgres µs/req |")
    p("| --- | ---: | ---: | ---: | ---: |")
    for name in ["whoami", "whoami_dpop", "poll", "poll_signins", "poll_flood", "start"]:
        r = get("wrk", name, base)
        if not r or "server_cpu_s" not in r:
            continue
        w = r["wrk"]
        wall = w["duration_us"] / 1e6 * os.cpu_count()
        p(f"| {name} | {r['server_cpu_s'] / wall:.0%} | {r['pg_cpu_s'] / wall:.0%} | "
          f"{r['server_cpu_s'] / w['requests'] * 1e6:.0f} | {r['pg_cpu_s'] / w['requests'] * 1e6:.0f} |")
    slowed = get("poll_slowed", "poll", base)
    b, d = get("wrk", "whoami", base), get("wrk", "whoami_dpop", base)
    if b and d and "server_cpu_s" in b and "server_cpu_s" in d:
        def per(r, key):
            return r[key] / r["wrk"]["requests"] * 1e6
        dp = get("dpop", level=base) or {}
        p("")
        p(f"**What a DPoP proof check costs** (whoami, same run): server "
          f"{per(d, 'server_cpu_s'):.0f} µs/req with a proof vs {per(b, 'server_cpu_s'):.0f} as Bearer "
          f"(**+{per(d, 'server_cpu_s') - per(b, 'server_cpu_s'):.0f} µs**: parsing the proof, its ES256 "
          f"signature check, the thumbprint, and the jti insert's turn at the pool); PostgreSQL "
          f"{per(d, 'pg_cpu_s'):.0f} vs {per(b, 'pg_cpu_s'):.0f} µs/req "
          f"(**+{per(d, 'pg_cpu_s') - per(b, 'pg_cpu_s'):.0f} µs**: the jti insert, its own transaction "
          f"with `synchronous_commit` off); throughput {rate(d['wrk']) / rate(b['wrk']):.2f}× the Bearer "
          f"whoami's. The jti insert alone (pgbench, same cluster): {tps('jti_ceiling', base):.0f} TPS"
          f"{ceil_lat('jti_ceiling', base)}. {d['wrk']['requests']:,} requests in the run, "
          f"{dp.get('proofs', 0):,} proofs made for it (non-2xx > 0 would mean replays: too few); "
          f"rows in dpop_proofs after it: {dp.get('stored', 0):,}.")
    p("")
    p(f"Each run follows a warm-up of the same load (2 s; 6 s for poll). whoami rotates over {base_users} seeded "
      "tokens (the warm-up set their `last_used_at`, so the run sees the steady state: one write per "
      f"token per minute). Poll rotates round-robin over {poll_sessions} seeded pending sessions "
      "(each wrk thread over its own half) with DEVICE_CODE_INTERVAL_SEC=1; the warm-up polls every "
      "session at least once (steady state: sessions already read as pending), then the interval is "
      "reset and the run starts 1 s later, so no session is polled sooner than its interval; a "
      "`slow_down` 429 would show as non-2xx. "
      f"Sessions that got one: {slowed['sessions'] if slowed else '?'}. "
      "Socket errors are wrk's connect, read, write and timeout errors.")
    fl = get("flood", level=base)
    if fl:
        a = fl.get("answers") or {}
        p("")
        p(f"The slow_down flood polls {fl['sessions']} other seeded pending sessions round-robin, each "
          "far sooner than its interval, after a 2-s warm-up of the same load (each session read once, "
          "then cached; every interval grown to its 60-s cap), so its non-2xx are the expected 429s: "
          f"answers `slow_down` {a.get('slow_down', '?')}, anything else {a.get('other', '?')}. "
          f"WAL written during the run: {fl['wal_bytes']} bytes. Flood sessions whose 60-s interval "
          f"was in PostgreSQL within 5 s after the run: {fl['stored_60']} of {fl['sessions']}.")
    p("")

    p("## Other figures")
    p("")
    p("| figure | value | target | met |")
    p("| --- | --- | --- | --- |")
    idle = get("idle_rss")
    if idle:
        p(f"| idle server RSS (after start and seeding, before load) | {mib(idle['rss_kb'])} | ≤ 30 MB | "
          f"{'yes' if idle['rss_kb'] <= 30 * 1000 else '**no**'} |")
    peak = max((r["rss_max_kb"] for r in rows if r["kind"] == "wrk"), default=0)
    if peak:
        p(f"| server RSS under load (peak of 0.25-s samples, all runs) | {mib(peak)} | — | — |")
    w0, w1 = wrk("poll", base), wrk("poll_signins", base)
    s = get("signins", level=base)
    if w0 and w1:
        ratio = w1["p99_us"] / w0["p99_us"]
        p(f"| poll p99 during {loops} concurrent sign-ins | {ms(w1['p99_us'])} ms vs {ms(w0['p99_us'])} ms "
          f"without = **{ratio:.2f}×** ({rate(w1):.0f} req/s, p50 {ms(w1['p50_us'])} ms, "
          f"non-2xx {w1['status']}; sign-in answers {s['counts'] if s else '?'}) | ≤ 2× | "
          f"{'yes' if ratio <= 2 else '**no**'} |")
    lat, hold = get("longpoll_latency"), get("longpoll_hold")
    if lat:
        a, b = lat["sent_to_token_ms"], lat["ok_to_token_ms"]
        ok = lat["errors"] == 0 and a["p50"] is not None and a["p50"] <= 20 and a["p99"] <= 100
        p(f"| approval → waiting CLI gets the token, {lat['clis']:,} CLIs waiting | "
          f"approval sent → token p50 **{f2(a['p50'])} ms**, p99 **{f2(a['p99'])} ms** (max {f2(a['max'])}); "
          f"approval's 200 → token p50 {f2(b['p50'])}, p99 {f2(b['p99'])} ms; "
          f"{lat['delivered']:,} tokens delivered, errors {lat['errors']}{kinds(lat)} | "
          f"p50 ≤ 20 ms, p99 ≤ 100 ms | {'yes' if ok else '**no**'} |")
    else:
        p("| approval → waiting CLI gets the token, 1,000 CLIs waiting | not run | p50 ≤ 20 ms, p99 ≤ 100 ms | — |")
    if hold:
        pool = hold["pool_size"]
        busy = hold["db_busy_max_hold"]
        ok_rss = hold["rss_max_kb"] <= 200 * 1000
        ok_pool = busy is not None and busy < pool
        ok = ok_rss and hold["errors"] == 0 and ok_pool and hold["peak_open"] == hold["polls"]
        misses = [m for m, bad in (("RSS", not ok_rss), ("errors", hold["errors"]),
                                   ("pool", not ok_pool),
                                   ("not all open at once", hold["peak_open"] != hold["polls"])) if bad]
        p(f"| {hold['polls']:,} concurrent waiting polls | {hold['peak_open']:,} open at once; "
          f"server RSS peak **{mib(hold['rss_max_kb'])}** (before {mib(hold['rss_idle_kb'])}, "
          f"1 s after the last answer {mib(hold.get('rss_after_kb', 0))}); "
          f"errors **{hold['errors']}**{kinds(hold)}, {hold['answers']:,} answers, each {f2(hold['answer_lag_ms']['p50'])} ms "
          f"(max {f2(hold['answer_lag_ms']['max'])} ms) after its {hold['wait_s']} s wait; "
          f"DB connections during the {hold['hold_s']:.0f}-s hold: busy max **{busy}** of {pool} + 1 LISTEN, "
          f"total {hold['db_total_min']}–{hold['db_total_max']} (busy max {hold['db_busy_max_ramp']} while opening) | "
          f"RSS ≤ 200 MB, 0 errors, pool not exhausted | "
          f"{'yes' if ok else '**no** (' + ', '.join(misses) + ')'} |")
    else:
        p("| 10,000 concurrent waiting polls | not run | RSS ≤ 200 MB, 0 errors, pool not exhausted | — |")
    p("")
    if lat or hold:
        ctx = get("longpoll_context") or {}
        p("Long-poll (`bench/longpoll.py`, once, after the load runs; raw HTTP/1.1, one connection per "
          "waiting poll): **approval → token**: starts "
          f"{lat['clis'] if lat else 1000:,} sessions through the API, holds one `wait=30` poll per "
          "session, allows 1 s for the server to pick them all up (there is no public count of held "
          "polls), then one signed-in browser session approves them one after another through "
          "`POST .../device/complete` on one keep-alive connection (one account holds all the tokens: "
          "the bench sets MAX_API_TOKENS_PER_USER=10000). The figure is the time from writing an approval to reading the "
          "waiting poll's approved answer; from the approval's 200 instead it can be negative, since "
          "the NOTIFY goes out at commit, before the approval answers"
          + (f" (approvals took {lat['approvals_s']:.1f} s in all, p50 {f2(lat['approve_ms']['p50'])} ms each)" if lat else "")
          + ". **Concurrent waiting polls**: distinct seeded pending sessions, connections opened "
          "500 at a time"
          + (f" ({hold['ramp_s']:.1f} s to open all)" if hold else "")
          + ", then held until the server answers `pending` after the wait. Sessions still at the 1-s "
          "poll interval go first (a session the load runs pushed to a longer interval would rightly "
          "answer `slow_down`"
          + (f"; {hold['grown_interval_sessions_used']} such used" if hold else "")
          + "). An error is a failed "
          "connection, any answer but 200 `pending`, or one before the wait was up. Server VmRSS and "
          "`pg_stat_activity` (the server's database, state ≠ idle = busy) are sampled every 0.25 s; "
          "the hold is from the last poll's start to the first answer. "
          f"Database afterwards: {ctx.get('api_tokens', 0):,} api_tokens, {ctx.get('cli_device_sessions', 0):,} "
          f"cli_device_sessions. Open-file limit {ctx.get('nofile', '?')}; server WARN/ERROR log lines during the step: "
          f"{ctx.get('server_warnings', '?')}.")
        p("")

    p("## Row scaling")
    p("")
    p("| level | users / api_tokens / cli_device_sessions | fill s | `pgbench -S` TPS (p99 ms) | whoami req/s | p50 ms | p99 ms | ratio | poll req/s | p50 ms | p99 ms | ratio | peak RSS |")
    p("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for lv in levels:
        r = get("rows", level=lv)
        f = get("fill", level=lv)
        c = tps("select_ceiling", lv)
        a, b = wrk("whoami", lv), wrk("poll", lv)
        if not (r and c and a and b):
            continue
        rss = max(get("wrk", "whoami", lv)["rss_max_kb"], get("wrk", "poll", lv)["rss_max_kb"])
        p(f"| {level_name(lv)} | {r['users']:,} / {r['api_tokens']:,} / {r['cli_device_sessions']:,} | "
          f"{f['seconds'] if f else '—'} | {c:.0f} ({ms(get('pgbench', 'select_ceiling', lv).get('p99_us', 0))}) | "
          f"{rate(a):.0f} | {ms(a['p50_us'])} | {ms(a['p99_us'])} | {rate(a) / c:.2f} | "
          f"{rate(b):.0f} | {ms(b['p50_us'])} | {ms(b['p99_us'])} | {rate(b) / c:.2f} | {mib(rss)} |")
    p("")
    explain = os.path.join(logs, f"explain-{levels[-1]}.txt")
    if os.path.exists(explain):
        p(f"### EXPLAIN (ANALYZE, BUFFERS) at {level_name(levels[-1])} rows (generic plans, as a pooled connection runs them)")
        p("")
        p("```")
        p(open(explain).read().rstrip())
        p("```")
    warn = os.path.join(logs, "server-warnings.count")
    if os.path.exists(warn):
        p("")
        p(f"Server log lines at WARN or ERROR during the run: {open(warn).read().strip() or '0'} "
          f"(bench/.work/logs/server.log).")
    print("\n".join(out))


if __name__ == "__main__":
    main()
