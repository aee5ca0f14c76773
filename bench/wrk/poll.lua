-- POST /api/v1/cli/auth/device/poll, rotating round-robin over this
-- thread's share of the seeded pending sessions: a session comes round again
-- only after every other session of the thread was polled once.
-- args: DEVICE_CODES_FILE NTHREADS
dofile(os.getenv("BENCH_DIR") .. "/wrk/report.lua")

local bodies, n, i = {}, 0, 0
function init(args)
  for _, code in ipairs(load_lines(args[1], thread_id, tonumber(args[2]))) do
    bodies[#bodies + 1] = '{"deviceCode":"' .. code .. '"}'
  end
  n = #bodies
end

function request()
  i = i % n + 1
  return wrk.format("POST", "/api/v1/cli/auth/device/poll",
    { ["Content-Type"] = "application/json" }, bodies[i])
end
