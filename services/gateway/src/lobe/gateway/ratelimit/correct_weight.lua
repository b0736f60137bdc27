-- Replace an entry's weight (the real token count once an answer ends, for the estimate it was
-- admitted with), keeping its time; nothing when the entry has already left its window.
-- KEYS: [1] the log's sorted set, [2] its running sum. ARGV: [1] entry id, [2] old weight, [3] new.
local old = ARGV[1] .. ':' .. ARGV[2]
local score = redis.call('ZSCORE', KEYS[1], old)
if not score then
  return 0
end
redis.call('ZREM', KEYS[1], old)
redis.call('ZADD', KEYS[1], score, ARGV[1] .. ':' .. ARGV[3])
redis.call('INCRBY', KEYS[2], tonumber(ARGV[3]) - tonumber(ARGV[2]))
return 1
