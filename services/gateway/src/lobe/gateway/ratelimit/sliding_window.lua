-- Weighted sliding-window logs: checked together and charged together, in one atomic script run.
--
-- KEYS: per log, a sorted set of entries (member "<id>:<weight>", score = admission time in ms)
--       and the key of its running sum of weights.
-- ARGV: [1] the entry id (a request id, unique); [2] 1 to charge, 0 to only check;
--       then per log: limit, window in ms, weight.
-- Returns {refused log (0 = there was room), now in ms, then per log: sum, oldest entry's ms}.
--
-- Exact: Redis runs a script alone, so no other gateway's check can slip between this check and
-- this charge; the clock is Redis's own (TIME), one clock for every replica; a window is the last
-- `window` ms before now, so no stretch of that length ever holds more than `limit` in weights.
-- Each entry is trimmed once, when it leaves its window: O(log n) per request, amortised.

redis.replicate_commands()  -- effects replication, needed for TIME before writes on Redis < 5
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local logs = #KEYS / 2
local sums = {}
local refused = 0

for i = 1, logs do
  local entries, total = KEYS[2 * i - 1], KEYS[2 * i]
  local limit, window, weight = tonumber(ARGV[3 * i]), tonumber(ARGV[3 * i + 1]), tonumber(ARGV[3 * i + 2])
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

if refused == 0 and ARGV[2] == '1' then
  for i = 1, logs do
    local entries, total = KEYS[2 * i - 1], KEYS[2 * i]
    local window, weight = ARGV[3 * i + 1], tonumber(ARGV[3 * i + 2])
    redis.call('ZADD', entries, now, ARGV[1] .. ':' .. weight)
    sums[i] = sums[i] + weight
    redis.call('SET', total, sums[i], 'PX', window)
    redis.call('PEXPIRE', entries, window)
  end
end

local result = {refused, now}
for i = 1, logs do
  local oldest = redis.call('ZRANGE', KEYS[2 * i - 1], 0, 0, 'WITHSCORES')
  result[#result + 1] = sums[i]
  result[#result + 1] = tonumber(oldest[2] or now)
end
return result
