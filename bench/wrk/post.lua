-- wrk script for bench/run: POST the JSON body in the file named by
-- $BENCH_BODY to the URL given on wrk's command line, and print one line
-- `BENCH {json}` with the request count, duration, errors and latency
-- percentiles (microseconds) for bench-tool's report.
local path = assert(os.getenv("BENCH_BODY"), "set BENCH_BODY to a JSON body file")
local f = assert(io.open(path, "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
-- Peers that want a key can be configured to accept this one.
wrk.headers["Authorization"] = "Bearer bench"

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests":%d,"duration_us":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"mean":%.1f,"max":%d}}\n',
    summary.requests, summary.duration,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.mean, latency.max))
end
