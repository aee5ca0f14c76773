-- The poll flood: POST /api/v1/cli/auth/device/poll round-robin over a few
-- pending sessions, far faster than their interval, so every answer should
-- be 429 `slow_down`. Counts the answers that were and were not, over all
-- threads, and prints them on a FLOOD line before the BENCH line.
-- args: DEVICE_CODES_FILE NTHREADS
dofile(os.getenv("BENCH_DIR") .. "/wrk/poll.lua")

local threads = {}
local base_setup = setup
function setup(thread)
  base_setup(thread)
  threads[#threads + 1] = thread
end

slow_down_answers, other_answers = 0, 0
function response(status, headers, body)
  if status == 429 and body:find('"slow_down"', 1, true) then
    slow_down_answers = slow_down_answers + 1
  else
    other_answers = other_answers + 1
  end
end

local base_done = done
function done(summary, latency, requests)
  local slow, other = 0, 0
  for _, t in ipairs(threads) do
    slow = slow + t:get("slow_down_answers")
    other = other + t:get("other_answers")
  end
  io.write(string.format('FLOOD {"slow_down":%d,"other":%d}\n', slow, other))
  base_done(summary, latency, requests)
end
