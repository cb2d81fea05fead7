-- Replays pre-signed Shopify webhook deliveries for bench/intake.py.
--
--   wrk ... -s bench/wrk_orders.lua <url> -- <manifest> <threads> <mode> <done-prefix> [limit]
--
-- Each wrk thread loads its share of the first <limit> manifest lines (all by default;
-- line i goes to thread i % threads):
-- one body file per request plus its headers, pre-formatted at start-up, so nothing is
-- built or signed while the clock runs.
--   mode "once":  every request is sent exactly once; when a thread has had an answer to
--                 all of its requests its connections go idle and it writes
--                 <done-prefix>.<thread id>, so the driver can stop wrk (SIGINT).
--   mode "cycle": the requests are sent round and round until wrk's -d ends (the bare
--                 endpoint does not deduplicate, so repeats cost it nothing extra).
-- done() prints one line starting with BENCH_JSON with the counters of every thread.

local threads = {}
local created = 0

function setup(thread)
  thread:set("tid", created)
  -- wrk calls request() once on the first thread to check it (before the run starts):
  -- that call must not consume a request.
  thread:set("skip_verify", created == 0)
  created = created + 1
  table.insert(threads, thread)
end

-- Per-thread state. The counters are globals because done() reads them with thread:get.
local reqs = {}
local idx = 0
local mode, done_path
local finished = false
sent, answered, laps, loaded_count = 0, 0, 0, 0
processed, duplicate, dead_letter, ok, other_200, non_200 = 0, 0, 0, 0, 0, 0

local function split_tabs(line)
  local fields = {}
  for field in string.gmatch(line, "[^\t]+") do
    fields[#fields + 1] = field
  end
  return fields
end

function init(args)
  local manifest, nthreads = args[1], tonumber(args[2])
  mode, done_path = args[3], args[4]
  local limit = tonumber(args[5] or "") or math.huge
  local dir = string.match(manifest, "^(.*)/[^/]*$") or "."
  local n = 0
  for line in io.lines(manifest) do
    if n >= limit then
      break
    end
    if n % nthreads == tid then
      local fields = split_tabs(line)
      local file = assert(io.open(dir .. "/" .. fields[1], "rb"))
      local body = file:read("*a")
      file:close()
      local headers = {}
      for k = 2, #fields do
        local name, value = string.match(fields[k], "^([^:]+): (.*)$")
        headers[name] = value
      end
      reqs[#reqs + 1] = wrk.format("POST", nil, headers, body)
    end
    n = n + 1
  end
  loaded_count = #reqs
end

function request()
  if skip_verify then
    skip_verify = false
    return reqs[1]
  end
  if idx >= #reqs then
    if mode ~= "cycle" then
      return "" -- nothing left: this connection goes idle
    end
    idx = 0
    laps = laps + 1
  end
  idx = idx + 1
  sent = sent + 1
  return reqs[idx]
end

function response(status, headers, body)
  answered = answered + 1
  if status == 200 then
    if string.find(body, '"processed"', 1, true) then
      processed = processed + 1
    elseif string.find(body, '"duplicate"', 1, true) then
      duplicate = duplicate + 1
    elseif string.find(body, '"dead_letter"', 1, true) then
      dead_letter = dead_letter + 1
    elseif body == "ok" then
      ok = ok + 1
    else
      other_200 = other_200 + 1
    end
  else
    non_200 = non_200 + 1
  end
  if mode == "once" and not finished and idx >= #reqs and answered >= sent then
    finished = true
    local file = io.open(done_path .. "." .. tid, "w")
    if file then
      file:write(tostring(answered))
      file:close()
    end
  end
end

function done(summary, latency, requests)
  local keys = {
    "loaded", "sent", "answered", "laps", "processed", "duplicate", "dead_letter", "ok",
    "other_200", "non_200",
  }
  local totals = {}
  for _, key in ipairs(keys) do
    totals[key] = 0
  end
  for _, thread in ipairs(threads) do
    for _, key in ipairs(keys) do
      if key == "loaded" then
        totals[key] = totals[key] + thread:get("loaded_count")
      else
        totals[key] = totals[key] + thread:get(key)
      end
    end
  end
  local errors = summary.errors
  local parts = {
    string.format('"requests":%d', summary.requests),
    string.format('"duration_us":%d', summary.duration),
    string.format('"latency_min_us":%d', latency.min),
    string.format('"latency_mean_us":%.1f', latency.mean),
    string.format('"latency_max_us":%d', latency.max),
    string.format('"p50_us":%d', latency:percentile(50)),
    string.format('"p90_us":%d', latency:percentile(90)),
    string.format('"p99_us":%d', latency:percentile(99)),
    string.format('"errors_connect":%d', errors.connect),
    string.format('"errors_read":%d', errors.read),
    string.format('"errors_write":%d', errors.write),
    string.format('"errors_status":%d', errors.status),
    string.format('"errors_timeout":%d', errors.timeout),
  }
  for _, key in ipairs(keys) do
    parts[#parts + 1] = string.format('"%s":%d', key, totals[key])
  end
  io.write("BENCH_JSON {" .. table.concat(parts, ",") .. "}\n")
end
