-- GET /api/v1/cli/whoami, rotating over the seeded tokens.
-- args: TOKENS_FILE NTHREADS
dofile(os.getenv("BENCH_DIR") .. "/wrk/report.lua")

local tokens, n, i = nil, 0, 0
function init(args)
  tokens = load_lines(args[1], thread_id, tonumber(args[2]))
  n = #tokens
  i = math.random(n) - 1
end

function request()
  i = i % n + 1
  return wrk.format("GET", "/api/v1/cli/whoami", { ["Authorization"] = "Bearer " .. tokens[i] })
end
