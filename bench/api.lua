-- api.lua: wrk script for bench/api.sh. Each request asks GET /api/feature for a random
-- feature of the benchmark's SAE; the summary line is what api.sh prints.
local n = tonumber(os.getenv("SAED_BENCH_FEATURES")) or 4096
local prefix = os.getenv("SAED_BENCH_PREFIX") or "/api/feature/tiny-a/1-bench/"
local threads, counter = {}, 1

function setup(thread)
    thread:set("tid", counter)
    counter = counter + 1
    table.insert(threads, thread)
end

function init(args)
    math.randomseed(7919 * tid + 17)
end

function request()
    return wrk.format("GET", prefix .. math.random(0, n - 1))
end

function done(summary, latency, requests)
    local secs = summary.duration / 1e6
    local e = summary.errors
    io.write(string.format(
        "RESULT %.0f req/s  p50 %.2f ms  p90 %.2f ms  p99 %.2f ms  max %.2f ms  %d requests  %.1f KB/response  %d socket errors  %d non-2xx\n",
        summary.requests / secs, latency:percentile(50) / 1000, latency:percentile(90) / 1000,
        latency:percentile(99) / 1000, latency.max / 1000, summary.requests,
        summary.bytes / math.max(summary.requests, 1) / 1024,
        e.connect + e.read + e.write + e.timeout, e.status))
end

-- SAED_BENCH_DELAY_MS: each connection waits this long between requests, which paces the
-- load (about connections / delay requests per second) to measure latency at a given rate.
local pause = tonumber(os.getenv("SAED_BENCH_DELAY_MS") or "0")
if pause > 0 then
    function delay() return pause end
end
