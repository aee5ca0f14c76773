-- GET /api/v1/cli/whoami with DPoP-bound tokens: each request sends the
-- next pre-made pair once, as `Authorization: DPoP <token>` and `DPoP:
-- <proof>` (a fresh jti, the token's ath, htm GET, the whoami htu).
-- Proofs are made by bench/dpop-proofs just before the run (wrk's Lua
-- cannot sign ES256). Past the end of its share a thread starts over: those
-- are replays, answered 401 and counted as non-2xx (the pool was too small).
-- args: PROOFS_FILE NTHREADS   (lines "<token> <proof>")
dofile(os.getenv("BENCH_DIR") .. "/wrk/report.lua")

local tokens, proofs, n, i = {}, {}, 0, 0
function init(args)
  for k, line in ipairs(load_lines(args[1], thread_id, tonumber(args[2]))) do
    local sp = line:find(" ", 1, true)
    tokens[k] = "DPoP " .. line:sub(1, sp - 1)
    proofs[k] = line:sub(sp + 1)
  end
  n = #tokens
end

function request()
  i = i % n + 1
  return wrk.format("GET", "/api/v1/cli/whoami", { ["Authorization"] = tokens[i], ["DPoP"] = proofs[i] })
end
