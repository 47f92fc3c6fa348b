-- wrk script: POST one AzamPay callback body per request, walking through a file of bodies.
--
--   wrk -t1 -c16 -d15s --latency -s bench/callbacks.lua http://127.0.0.1:8099/api/v1.0/donors/payment/azampay/callback/ -- BODIES.jsonl [THREADS]
--
-- BODIES.jsonl holds one JSON body per line (bench/setup_payments.py writes it, ~10% of the lines being exact
-- repeats of an earlier line). Each request takes the next line, whichever connection sends it, so every
-- body is sent once (the intended repeats aside). request() runs in the wrk thread's own Lua state: with
-- one thread (-t1, what bench/run.sh uses) a plain global counter hands out the lines in order; with
-- several threads pass THREADS and thread i takes lines i, i+THREADS, ...
-- When the file runs out the thread stops (the run is then shorter than -d, and done() says so).
-- done() prints one machine-readable line starting with "BENCH" for bench/run.sh.

local bodies = {}
local count = 0
local threads = {}
local next_id = 0

-- Thread-local globals that done() reads back through thread:get().
issued = 0
exhausted = 0
tid = 0
stride = 1

function setup(thread)
   thread:set("tid", next_id)
   next_id = next_id + 1
   table.insert(threads, thread)
end

function init(args)
   local file = args[1]
   if not file then
      error("usage: wrk ... -s bench/callbacks.lua URL -- BODIES.jsonl [THREADS]")
   end
   stride = tonumber(args[2] or "1")
   local headers = {
      ["Content-Type"] = "application/json",
      ["User-Agent"] = "AzamPay-bench",
   }
   for line in io.lines(file) do
      if #line > 0 then
         count = count + 1
         bodies[count] = wrk.format("POST", nil, headers, line)
      end
   end
   if count == 0 then
      error("no callback bodies in " .. file)
   end
end

function request()
   local line = tid + issued * stride + 1
   if line > count then
      -- Out of fresh bodies: stop this thread rather than resend a body that was already credited.
      exhausted = exhausted + 1
      wrk.thread:stop()
      line = count
   end
   issued = issued + 1
   return bodies[line]
end

function done(summary, latency, requests)
   local sent, ran_out = 0, 0
   for _, thread in ipairs(threads) do
      sent = sent + (thread:get("issued") or 0)
      ran_out = ran_out + (thread:get("exhausted") or 0)
   end
   local seconds = summary.duration / 1000000
   local errors = summary.errors
   io.write(string.format(
      "BENCH requests=%d duration_s=%.2f rps=%.1f p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f "
         .. "non2xx=%d connect_err=%d read_err=%d write_err=%d timeouts=%d issued=%d exhausted=%d\n",
      summary.requests,
      seconds,
      summary.requests / seconds,
      latency:percentile(50) / 1000,
      latency:percentile(90) / 1000,
      latency:percentile(99) / 1000,
      latency.max / 1000,
      errors.status,
      errors.connect,
      errors.read,
      errors.write,
      errors.timeout,
      sent,
      ran_out
   ))
end
