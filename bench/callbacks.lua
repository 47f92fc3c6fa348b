-- wrk script: POST one AzamPay callback body per request, walking through a file of bodies.
--
--   wrk -t1 -c16 -d15s --latency -s bench/callbacks.lua http://127.0.0.1:8099/api/v1.0/donors/payment/azampay/callback/ -- BODIES.jsonl [THREADS]
--
-- BODIES.jsonl holds one JSON body per line (bench/setup_payments.py writes it, ~10% of the lines being exact
-- repeats of an earlier line). Each request takes the next line, whichever connection sends it, so every
-- body is sent once (the intended repeats aside). request() runs in the wrk thread's own Lua state: with
-- one thread (-t1, what bench/run.sh uses) a plain global counter hands out the lines in order; with
-- several threads pass THREADS and thread i takes lines i, i+THREADS, ...
-- When the file runs out the thread stops (the run is then shorter than -d, and done() says so). wrk itself
-- still reports -d as the duration (its main thread sleeps for -d whatever the threads do), so the script
-- times the run with clock_gettime (LuaJIT FFI): from the first request handed out to the moment the file ran
-- out, and done() computes requests/s over that. The requests still in flight then are never read (at most
-- one per connection: bench/check_results.py allows for them). With one thread it then sends wrk a SIGINT,
-- which ends the run at once (as Ctrl-C does) rather than after -d.
-- done() prints one machine-readable line starting with "BENCH" for bench/run.sh.

local ffi = require("ffi")
ffi.cdef([[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
int kill(int pid, int sig);
int getpid(void);
]])
local timespec = ffi.new("bench_timespec")
local function now()
   ffi.C.clock_gettime(1, timespec) -- CLOCK_MONOTONIC
   return tonumber(timespec.tv_sec) + tonumber(timespec.tv_nsec) / 1e9
end

local bodies = {}
local count = 0
local threads = {}
local next_id = 0

-- Thread-local globals that done() reads back through thread:get().
issued = 0
exhausted = 0
started = 0
ran_out_at = 0
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
   if started == 0 then
      started = now()
   end
   local line = tid + issued * stride + 1
   if line > count then
      -- Out of fresh bodies: stop this thread rather than resend a body that was already credited.
      if exhausted == 0 then
         ran_out_at = now()
         if stride == 1 then
            -- The only thread is done: SIGINT ends wrk now (as Ctrl-C does) instead of after -d.
            ffi.C.kill(ffi.C.getpid(), 2)
         end
      end
      exhausted = exhausted + 1
      wrk.thread:stop()
      line = count
   end
   issued = issued + 1
   return bodies[line]
end

function done(summary, latency, requests)
   local sent, ran_out, first, last = 0, 0, nil, 0
   for _, thread in ipairs(threads) do
      sent = sent + (thread:get("issued") or 0)
      ran_out = ran_out + (thread:get("exhausted") or 0)
      local t0, t1 = thread:get("started") or 0, thread:get("ran_out_at") or 0
      if t0 > 0 and (first == nil or t0 < first) then
         first = t0
      end
      if t1 > last then
         last = t1
      end
   end
   local seconds = summary.duration / 1000000
   if ran_out > 0 and first ~= nil and last > first then
      seconds = last - first -- every thread ran out: the run lasted until then, not -d
   end
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
