-- mixed.lua: scenario "mixed" (app apps/mixed.py). A share of the requests (first script
-- argument, default 0.05) goes to /slow (200 ms), the rest to /fast. Each request carries ?id=N,
-- the app echoes N in X-Bench-Id, so response() can match it to its send time and record the
-- latency per path (wrk itself only has one histogram). done() prints one line:
--   MIXED fast_n=.. fast_p50_ms=.. fast_p99_ms=.. slow_n=.. slow_p50_ms=.. slow_p99_ms=.. unmatched=..
-- The random sequence is seeded identically for every server, so all get the same mix.
local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]]
local ts = ffi.new("bench_timespec")
local function now_us()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1e6 + tonumber(ts.tv_nsec) / 1e3
end

local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  share = tonumber(args[1] or "0.05")
  seq, unmatched = 0, 0
  sent_at, sent_slow = {}, {}
  fast, slow = {}, {}
  math.randomseed(12345)
end

function request()
  seq = seq + 1
  local is_slow = math.random() < share
  sent_at[seq] = now_us()
  sent_slow[seq] = is_slow
  return wrk.format("GET", (is_slow and "/slow" or "/fast") .. "?id=" .. seq)
end

function response(status, headers, body)
  local id
  for k, v in pairs(headers) do
    if string.lower(k) == "x-bench-id" then id = tonumber(v) break end
  end
  local t0 = id and sent_at[id]
  if not t0 then unmatched = unmatched + 1 return end
  local list = sent_slow[id] and slow or fast
  list[#list + 1] = (now_us() - t0) / 1000.0
  sent_at[id], sent_slow[id] = nil, nil
end

local function pct(sorted, p)
  if #sorted == 0 then return -1 end
  return sorted[math.max(1, math.ceil(p * #sorted))]
end

function done(summary, latency, requests)
  local f, s, u = {}, {}, 0
  for _, t in ipairs(threads) do
    for _, v in ipairs(t:get("fast")) do f[#f + 1] = v end
    for _, v in ipairs(t:get("slow")) do s[#s + 1] = v end
    u = u + t:get("unmatched")
  end
  table.sort(f)
  table.sort(s)
  io.write(string.format(
    "MIXED fast_n=%d fast_p50_ms=%.3f fast_p99_ms=%.3f slow_n=%d slow_p50_ms=%.3f slow_p99_ms=%.3f unmatched=%d\n",
    #f, pct(f, 0.50), pct(f, 0.99), #s, pct(s, 0.50), pct(s, 0.99), u))
end
