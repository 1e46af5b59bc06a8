-- wrk script for benches/destination.sh.
--
--   wrk ... -s benches/destination.lua URL -- post TOKEN BYTES   POST Redox data model messages
--   wrk ... -s benches/destination.lua URL -- get                GET (the /healthz ceiling)
--
-- Each POST is a new message of about BYTES bytes: fresh random Meta.Logs[0].ID and AttemptID
-- (UUID v4, as Redox's are), so the server classifies, stores and fsyncs every one instead of
-- answering a retry from its duplicate map. At the end one line `JSON {...}` gives the figures
-- the benchmark's summary reads (latencies in milliseconds).

local threads = {}
local counter = 1

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local mode, head, tail

local function uuid4()
  local r = math.random
  return string.format("%04x%04x-%04x-4%03x-%04x-%04x%04x%04x",
    r(0, 0xffff), r(0, 0xffff), r(0, 0xffff), r(0, 0xfff),
    0x8000 + r(0, 0x3fff), r(0, 0xffff), r(0, 0xffff), r(0, 0xffff))
end

function init(args)
  math.randomseed(os.time() * 1000 + id)
  mode = args[1] or "get"
  if mode == "post" then
    local token, bytes = args[2], tonumber(args[3] or "2048")
    wrk.method = "POST"
    wrk.headers["Content-Type"] = "application/json"
    wrk.headers["verification-token"] = token
    head = '{"Meta":{"DataModel":"PatientAdmin","EventType":"Arrival",'
      .. '"EventDateTime":"2026-11-23T12:00:00.000Z","Test":true,'
      .. '"Source":{"ID":"bench","Name":"wharf bench"},"Logs":[{"ID":"'
    local middle = '","AttemptID":"' .. uuid4() .. '"}]},"Patient":{"Notes":"'
    local close = '"}}'
    -- Two 36-character IDs; pad the notes so the whole body has `bytes` bytes.
    local pad = bytes - (#head + 36 + #middle + #close)
    if pad < 0 then pad = 0 end
    tail = middle .. string.rep("x", pad) .. close
  end
end

function request()
  if mode == "post" then
    -- The attempt ID stays per thread; the log ID (the duplicate key) is new per request.
    return wrk.format(nil, nil, nil, head .. uuid4() .. tail)
  end
  return wrk.format("GET")
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'JSON {"requests":%d,"seconds":%.3f,"per_second":%.1f,"mean_ms":%.3f,"p50_ms":%.3f,'
      .. '"p99_ms":%.3f,"max_ms":%.3f,"errors":%d,"non_2xx":%d}\n',
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency.mean / 1000, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000,
    errors.connect + errors.read + errors.write + errors.timeout, errors.status))
end
