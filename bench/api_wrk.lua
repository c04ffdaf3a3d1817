-- The API bench's load, for wrk (bench/api.py runs it): wrk -t N -c N -s bench/api_wrk.lua URL -- MODE FILE
--
-- One connection per wrk thread, so that each connection is one contractor's system in a closed loop, with
-- its own API key (wrk's request() cannot tell a thread's connections apart). MODE is "mix" or "floor".
-- FILE has one line per connection, written by bench/api.py:
--   <raw API key> TAB <slot> TAB <share> TAB <lead id> <lead id> ...
-- "share" connections act for the same contractor; this one accepts only the leads whose id is <slot>
-- modulo <share>, so that two of them never accept the same lead (the second would get a 409).
--
-- mix: list 40% (min_score 50|60|70, by score, 50 a page; one time in four the next page through its
-- cursor, right after), detail 40% (one of its lead ids), accept 20% (a lead it saw delivered, each once;
-- a detail while it has seen none). Reading an assigned lead delivers it, so details and pages feed the
-- accepts. floor: GET /healthz, no key (the server stack alone).
--
-- done() prints one JSON line last: wrk's own latency histogram's percentiles, its socket errors, and per
-- endpoint the answers by status and their latency percentiles (timed here, from request() to response()).

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_api_timespec;
int clock_gettime(int clock_id, bench_api_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local clock = ffi.new("bench_api_timespec")

local function now_ms()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, clock)
  return tonumber(clock.tv_sec) * 1000 + tonumber(clock.tv_nsec) / 1e6
end

local ENDPOINTS = { "list", "next", "detail", "accept", "healthz" }
local MIN_SCORES = { 50, 60, 70 }
local DELIVERED_KEPT = 200 -- the most recent delivered leads a connection keeps to accept
-- A lead's first fields, in the order leads/representation.py answers them: "id", "trade", "state".
local LEAD_HEAD = '"id"%s*:%s*(%d+)%s*,%s*"trade"%s*:%s*"[^"]*"%s*,%s*"state"%s*:%s*"(%a+)"'
local NEXT_PAGE = '"next"%s*:%s*"https?://[^/"]*(/[^"]*)"'

-- Setup and done run in wrk's main Lua state, the rest in each thread's own.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("number", #threads)
end

-- Per thread. Only flat tables of numbers and strings can be copied out to done() (wrk's get()).
statuses = {} -- "<endpoint> <status>" -> answers
-- and a global per endpoint, "<endpoint>_ms": its latencies in milliseconds (a table of tables would not copy)

local mode, headers, ids, slot, share
local current, started, next_page
local delivered, queued = {}, {}

local function connection_read(path, wanted)
  local line_number = 0
  for line in io.lines(path) do
    line_number = line_number + 1
    if line_number == wanted then
      local key, slot_text, share_text, id_text = line:match("^([^\t]+)\t(%d+)\t(%d+)\t([%d ]+)$")
      if not key then
        error(path .. ":" .. line_number .. ": not <key> TAB <slot> TAB <share> TAB <ids>")
      end
      local lead_ids = {}
      for id in id_text:gmatch("%d+") do
        table.insert(lead_ids, id)
      end
      return key, tonumber(slot_text), tonumber(share_text), lead_ids
    end
  end
  error(path .. " has no line " .. wanted .. " (one per connection)")
end

function init(args)
  mode = args[1]
  math.randomseed(number * 7919)
  for _, endpoint in ipairs(ENDPOINTS) do
    _G[endpoint .. "_ms"] = {}
  end
  if mode == "floor" then
    headers = { ["Accept"] = "application/json" }
  elseif mode == "mix" then
    local key
    key, slot, share, ids = connection_read(args[2], number)
    if #ids == 0 then
      error("connection " .. number .. ": its contractor has no leads to read")
    end
    headers = { ["Authorization"] = "Api-Key " .. key, ["Accept"] = "application/json" }
  else
    error("mode " .. tostring(mode) .. ": mix or floor")
  end
end

function request()
  local method, path, body = "GET", nil, nil
  if mode == "floor" then
    current, path = "healthz", "/healthz"
  elseif next_page then
    current, path, next_page = "next", next_page, nil
  else
    local pick = math.random()
    if pick < 0.4 then
      current = "list"
      path = "/api/v1/leads/?min_score=" .. MIN_SCORES[math.random(#MIN_SCORES)] .. "&ordering=-score&page_size=50"
    elseif pick < 0.8 or #delivered == 0 then
      current, path = "detail", "/api/v1/leads/" .. ids[math.random(#ids)] .. "/"
    else
      current, method, body = "accept", "POST", ""
      path = "/api/v1/leads/" .. table.remove(delivered) .. "/accept/"
    end
  end
  started = now_ms()
  return wrk.format(method, path, headers, body)
end

local function delivered_note(body)
  for id, state in body:gmatch(LEAD_HEAD) do
    if state == "delivered" and not queued[id] and tonumber(id) % share == slot then
      queued[id] = true
      table.insert(delivered, id)
      if #delivered > DELIVERED_KEPT then
        table.remove(delivered, 1)
      end
    end
  end
end

function response(status, _, body)
  local answered = current
  local latency = _G[answered .. "_ms"]
  latency[#latency + 1] = now_ms() - started
  local key = answered .. " " .. status
  statuses[key] = (statuses[key] or 0) + 1
  if status ~= 200 or mode == "floor" then
    return
  end
  if answered == "list" or answered == "next" then
    delivered_note(body)
    if answered == "list" and math.random() < 0.25 then
      next_page = body:match(NEXT_PAGE)
    end
  elseif answered == "detail" then
    delivered_note(body)
  end
end

local function percentile(sorted, fraction)
  if #sorted == 0 then
    return nil
  end
  local rank = math.max(1, math.ceil(fraction * #sorted))
  return sorted[rank]
end

local function json_number(value)
  if value == nil then
    return "null"
  end
  return string.format("%.3f", value)
end

function done(summary, latency, _)
  local counts, samples = {}, {}
  for _, endpoint in ipairs(ENDPOINTS) do
    samples[endpoint] = {}
  end
  for _, thread in ipairs(threads) do
    for key, answers in pairs(thread:get("statuses")) do
      counts[key] = (counts[key] or 0) + answers
    end
    for _, endpoint in ipairs(ENDPOINTS) do
      for _, value in ipairs(thread:get(endpoint .. "_ms") or {}) do
        table.insert(samples[endpoint], value)
      end
    end
  end
  local parts = {}
  for key, answers in pairs(counts) do
    table.insert(parts, string.format("%q: %d", key, answers))
  end
  local endpoints = {}
  for _, endpoint in ipairs(ENDPOINTS) do
    local values = samples[endpoint]
    if #values > 0 then
      table.sort(values)
      table.insert(endpoints, string.format('"%s": {"requests": %d, "p50_ms": %s, "p95_ms": %s, "p99_ms": %s}',
        endpoint, #values, json_number(percentile(values, 0.5)), json_number(percentile(values, 0.95)),
        json_number(percentile(values, 0.99))))
    end
  end
  local errors = summary.errors
  io.write(string.format(
    '{"wrk": true, "requests": %d, "duration_s": %.6f, "p50_ms": %s, "p95_ms": %s, "p99_ms": %s, '
      .. '"socket_errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d}, '
      .. '"statuses": {%s}, "endpoints": {%s}}\n',
    summary.requests, summary.duration / 1e6,
    json_number(latency:percentile(50) / 1000), json_number(latency:percentile(95) / 1000),
    json_number(latency:percentile(99) / 1000),
    errors.connect, errors.read, errors.write, errors.timeout,
    table.concat(parts, ", "), table.concat(endpoints, ", ")))
end
