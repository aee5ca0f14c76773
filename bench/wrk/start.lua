-- POST /api/v1/cli/auth/device/start: every request creates a session.
dofile(os.getenv("BENCH_DIR") .. "/wrk/report.lua")

wrk.method = "POST"
wrk.path = "/api/v1/cli/auth/device/start"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"tokenName":"bench"}'
