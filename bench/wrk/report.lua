-- Shared by the wrk scripts: after the run, one machine-readable line.
-- Latencies are microseconds; "status" counts non-2xx/3xx answers.
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests":%d,"duration_us":%d,"p50_us":%.0f,"p90_us":%.0f,"p99_us":%.0f,"max_us":%.0f,' ..
    '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end

-- Reads one value per line; with nthreads > 1 keeps only this thread's share,
-- so no two threads ever send the same value.
function load_lines(path, thread_id, nthreads)
  local out = {}
  local i = 0
  for line in io.lines(path) do
    if line ~= "" then
      if i % nthreads == thread_id then out[#out + 1] = line end
      i = i + 1
    end
  end
  assert(#out > 0, "no lines in " .. path)
  return out
end

local next_id = 0
function setup(thread)
  thread:set("thread_id", next_id)
  next_id = next_id + 1
end
