-- Weighted sliding-window logs, and optionally a cap on requests in flight: checked together and
-- charged together, in one atomic script run.
--
-- KEYS: per log, a sorted set of entries (member "<id>:<weight>", score = admission time in ms)
--       and the key of its running sum of weights; then, with a cap, the in-flight set (member
--       "<id>", score = when its lease runs out, in ms).
-- ARGV: [1] the entry id (a request id, unique); [2] 1 to charge, 0 to only check;
--       [3] the cap on requests in flight (0 = none); [4] a lease's length in ms;
--       then per log: limit, window in ms, weight.
-- Returns {refused (0 = there was room, i = log i, logs + 1 = the cap), now in ms,
--          then per log: sum, oldest entry's ms; then, with a cap, the requests in flight}.
--
-- Exact: Redis runs a script alone, so no other gateway's check can slip between this check and
-- this charge; the clock is Redis's own (TIME), one clock for every replica; a window is the last
-- `window` ms before now, so no stretch of that length ever holds more than `limit` in weights.
-- Each entry is trimmed once, when it leaves its window: O(log n) per request, amortised.
-- The cap rides in the same run (no second round trip); a lease that ran out (its gateway died,
-- nobody renewed it) is dropped here, so a dead replica's requests free their places on their own.

redis.replicate_commands()  -- effects replication, needed for TIME before writes on Redis < 5
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local cap, lease = tonumber(ARGV[3]), tonumber(ARGV[4])
local logs = (#KEYS - (cap > 0 and 1 or 0)) / 2
local sums = {}
local refused = 0

for i = 1, logs do
  local entries, total = KEYS[2 * i - 1], KEYS[2 * i]
  local limit, window, weight = tonumber(ARGV[3 * i + 2]), tonumber(ARGV[3 * i + 3]), tonumber(ARGV[3 * i + 4])
  local sum = tonumber(redis.call('GET', total) or '0')
  local expired = redis.call('ZRANGEBYSCORE', entries, '-inf', now - window)
  if #expired > 0 then
    for _, member in ipairs(expired) do
      sum = sum - tonumber(string.match(member, ':(%-?%d+)$'))
    end
    redis.call('ZREMRANGEBYSCORE', entries, '-inf', now - window)
  end
  if sum < 0 or redis.call('ZCARD', entries) == 0 then
    sum = 0  -- both keys expire together; this only heals a sum left without its entries
  end
  if #expired > 0 then
    redis.call('SET', total, sum, 'KEEPTTL')
  end
  sums[i] = sum
  if refused == 0 and sum + weight > limit then
    refused = i
  end
end

local in_flight = 0
if cap > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[#KEYS], '-inf', now)
  in_flight = redis.call('ZCARD', KEYS[#KEYS])
  if refused == 0 and in_flight >= cap then
    refused = logs + 1
  end
end

if refused == 0 and ARGV[2] == '1' then
  for i = 1, logs do
    local entries, total = KEYS[2 * i - 1], KEYS[2 * i]
    local window, weight = ARGV[3 * i + 3], tonumber(ARGV[3 * i + 4])
    redis.call('ZADD', entries, now, ARGV[1] .. ':' .. weight)
    sums[i] = sums[i] + weight
    redis.call('SET', total, sums[i], 'PX', window)
    redis.call('PEXPIRE', entries, window)
  end
  if cap > 0 then
    redis.call('ZADD', KEYS[#KEYS], now + lease, ARGV[1])
    redis.call('PEXPIRE', KEYS[#KEYS], lease)  -- the newest lease runs out last
    in_flight = in_flight + 1
  end
end

local result = {refused, now}
for i = 1, logs do
  local oldest = redis.call('ZRANGE', KEYS[2 * i - 1], 0, 0, 'WITHSCORES')
  result[#result + 1] = sums[i]
  result[#result + 1] = tonumber(oldest[2] or now)
end
if cap > 0 then
  result[#result + 1] = in_flight
end
return result
