-- Cards API load for wrk, one operation per run.
--
--   BENCH_OP    R (retrieve 4 cards by id), U (track usage), B (batch-create 4 cards with an
--               Idempotency-Key), Q (full-text query retrieve), L (list the first page),
--               S (hybrid search, limit 10) or C (context, budget 2,000 tokens); Q asks for
--               mode "text" (BM25, what its pgbench script runs): hybrid is the default
--   BENCH_DATA  a file of "tenant_id api_key card_id card_id ..." lines (bench/seed.py); for S
--               and C the search tenant's file: "tenant_id api_key", then one query a line
--   BENCH_RATE  0: saturation (closed loop). N > 0: open loop, N requests/s per connection;
--               run with one connection per thread (-t C -c C). Each request is timed from the
--               moment it was due, not from when it could be sent, so a slow response delays
--               no measurement (no coordinated omission).
--   BENCH_START_MS  open loop: when the first requests are due, after the threads are set up

local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clk_id, bench_timespec *tp);
]]
local clock = ffi.new("bench_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, clock) -- CLOCK_MONOTONIC
  return tonumber(clock.tv_sec) * 1000 + tonumber(clock.tv_nsec) / 1e6
end
local function wall_second()
  ffi.C.clock_gettime(0, clock) -- CLOCK_REALTIME: the server's log timestamps use it too
  return tonumber(clock.tv_sec)
end

local op = os.getenv("BENCH_OP") or "R"
local rate = tonumber(os.getenv("BENCH_RATE") or "0")
local data_file = os.getenv("BENCH_DATA")

local WORDS = {
  "widgets", "reliability", "audience", "pricing", "engineering", "newsletter", "growth",
  "customers", "platform", "security", "analytics", "brand", "launch", "roadmap", "support",
}
local FILLER = string.rep("lorem ipsum dolor sit amet consectetur adipiscing elit ", 20)

local threads = {}
local next_id = 0

-- Open loop: every thread's first request is due at one moment, BENCH_START_MS after the threads
-- were set up, so that no request is due while other threads still read the data file (~2 MB
-- for R, U, B, Q and L): seven threads parsing it at once held half the machine in the first
-- second of a run, and its requests waited for the load generator (docs/performance.md).
local START_MS = tonumber(os.getenv("BENCH_START_MS") or "0")
function setup(thread)
  next_id = next_id + 1
  thread:set("id", next_id)
  first_due_at = first_due_at or (now_ms() + START_MS) -- a global: thread:set copies it
  thread:set("first_due_at", first_due_at)
  table.insert(threads, thread)
end

function init(args)
  tenants = {}
  queries = {}
  if op == "S" or op == "C" then
    for line in io.lines(data_file) do
      if #tenants == 0 then
        local tenant_id, key = line:match("(%S+) (%S+)")
        tenants[1] = { id = tenant_id, key = key, cards = {} }
      else
        queries[#queries + 1] = line
      end
    end
  end
  for line in (op == "S" or op == "C") and function() return nil end or io.lines(data_file) do
    local fields = {}
    for field in line:gmatch("%S+") do
      fields[#fields + 1] = field
    end
    local cards = {}
    for i = 3, #fields do
      cards[#cards + 1] = fields[i]
    end
    tenants[#tenants + 1] = { id = fields[1], key = fields[2], cards = cards }
  end
  math.randomseed(id * 7919 + os.time())
  sent = 0
  latencies = {}
  ended_in = {} -- the wall-clock second each of `latencies` ended in (open loop only)
  sent_late = {} -- per request: how late wrk itself sent it, once it could (open loop only)
  last_response_at = 0
  late_now = 0
  failures = 0
end

local function pick(list)
  return list[math.random(#list)]
end

local function headers_for(tenant)
  return {
    ["Authorization"] = "Bearer " .. tenant.key,
    ["X-Tenant-ID"] = tenant.id,
    ["Content-Type"] = "application/json",
  }
end

local usage_tenant, usage_card, usage_run

function request()
  sent = sent + 1
  if rate > 0 and due_at ~= nil then
    -- The load generator's own lateness: from when the request could go (due, and the
    -- connection free) to now. A thread the kernel did not run shows here, not the server.
    late_now = now_ms() - math.max(due_at, last_response_at)
  end
  if op == "U" then
    -- Alternate a new workflow run (an event is recorded) and the same run again (deduplicated).
    if sent % 2 == 1 then
      usage_tenant = pick(tenants)
      usage_card = pick(usage_tenant.cards)
      usage_run = "bench-" .. id .. "-" .. sent
    end
    return wrk.format("POST", "/api/v1/cards/" .. usage_card .. "/usage", headers_for(usage_tenant),
      '{"workflow_id":"' .. usage_run .. '","workflow_type":"bench_run"}')
  end
  local tenant = pick(tenants)
  local headers = headers_for(tenant)
  if op == "R" then
    local ids = {}
    for i = 1, 4 do
      ids[i] = '"' .. pick(tenant.cards) .. '"'
    end
    return wrk.format("POST", "/api/v1/cards/retrieve", headers,
      '{"card_ids":[' .. table.concat(ids, ",") .. "]}")
  elseif op == "B" then
    headers["Idempotency-Key"] = "bench-" .. id .. "-" .. sent .. "-" .. math.random(1000000000)
    local cards = {}
    for i = 1, 4 do
      cards[i] = string.format(
        '{"card_type":"insight","title":"Bench insight %d","content":{"text":"%s"},"tags":["bench"]}',
        i, FILLER:sub(1, 300 + math.random(500)))
    end
    return wrk.format("POST", "/api/v1/cards/batch", headers,
      '{"cards":[' .. table.concat(cards, ",") .. "]}")
  elseif op == "Q" then
    return wrk.format("POST", "/api/v1/cards/retrieve", headers,
      '{"query":"' .. pick(WORDS) .. '","mode":"text","limit":10}')
  elseif op == "L" then
    return wrk.format("GET", "/api/v1/cards?limit=50", headers)
  elseif op == "S" then
    return wrk.format("POST", "/api/v1/cards/retrieve", headers,
      '{"query":"' .. pick(queries) .. '","mode":"hybrid","limit":10}')
  elseif op == "C" then
    return wrk.format("POST", "/api/v1/context", headers,
      '{"task":"Write about ' .. pick(queries) .. '","token_budget":2000}')
  end
  error("unknown BENCH_OP " .. op)
end

if rate > 0 then
  local interval = 1000 / rate
  local due = nil

  function delay()
    local now = now_ms()
    if due == nil then
      due = first_due_at + math.random() * interval -- spread the connections' first requests
    else
      due = due + interval
    end
    due_at = due
    local wait = due - now
    if wait < 0 then
      return 0
    end
    return math.floor(wait)
  end

  function response(status, headers, body)
    local latency = now_ms() - due_at
    latencies[#latencies + 1] = latency
    ended_in[#ended_in + 1] = wall_second()
    sent_late[#sent_late + 1] = math.max(0, late_now)
    last_response_at = now_ms()
    if status >= 300 then
      failures = failures + 1
    end
  end
end

local function percentile(sorted, p)
  if #sorted == 0 then
    return -1
  end
  return sorted[math.max(1, math.ceil(#sorted * p))]
end

function done(summary, latency, requests)
  local all = {}
  local seconds = {}
  local lateness = {}
  local failed = 0
  for _, thread in ipairs(threads) do
    -- Plain arrays only: wrk copies them between its Lua states; tables keyed by number
    -- do not survive the copy.
    local ended = thread:get("ended_in")
    local late = thread:get("sent_late")
    for i, value in ipairs(thread:get("latencies")) do
      all[#all + 1] = value
      local second = ended[i]
      if second ~= nil then
        local bucket = seconds[second]
        if bucket == nil then
          bucket = {}
          seconds[second] = bucket
        end
        bucket[#bucket + 1] = value
        lateness[second] = math.max(lateness[second] or 0, late[i] or 0)
      end
    end
    failed = failed + thread:get("failures")
  end
  table.sort(all)
  -- The timeline: for each wall-clock second, how many requests ended in it, their p99 and
  -- maximum, and the most wrk itself was late sending one of them.
  local timeline = {}
  for second, values in pairs(seconds) do
    table.sort(values)
    timeline[#timeline + 1] = string.format('"%d":[%d,%.3f,%.3f,%.3f]', second, #values,
      percentile(values, 0.99), values[#values], lateness[second] or 0)
  end
  io.write("BENCH_TIMELINE {" .. table.concat(timeline, ",") .. "}\n")
  local errors = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"errors_connect":%d,"errors_read":%d,' ..
    '"errors_write":%d,"errors_status":%d,"errors_timeout":%d,"failed":%d,"timed":%d,' ..
    '"p50_ms":%.3f,"p95_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f}\n',
    summary.requests, summary.duration, errors.connect, errors.read, errors.write,
    errors.status, errors.timeout, failed, #all,
    percentile(all, 0.50), percentile(all, 0.95), percentile(all, 0.99), #all > 0 and all[#all] or -1))
end
