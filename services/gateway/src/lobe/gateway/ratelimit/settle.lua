-- A request's end, in one run: replace the weights it was charged with (the real token count for
-- the estimate it was admitted with; 0 to undo a charge), keeping each entry's time, and give
-- back its place among the requests in flight. An entry that has left its window is left alone.
-- KEYS: per correction, the log's sorted set and its running sum; then, to release, the in-flight set.
-- ARGV: [1] entry id, [2] 1 to release (the last KEY), then per correction: old weight, new weight.
local release = ARGV[2] == '1'
local corrections = (#KEYS - (release and 1 or 0)) / 2
for i = 1, corrections do
  local entries, total = KEYS[2 * i - 1], KEYS[2 * i]
  local old, new = ARGV[2 * i + 1], ARGV[2 * i + 2]
  local score = redis.call('ZSCORE', entries, ARGV[1] .. ':' .. old)
  if score then
    redis.call('ZREM', entries, ARGV[1] .. ':' .. old)
    redis.call('ZADD', entries, score, ARGV[1] .. ':' .. new)
    redis.call('INCRBY', total, tonumber(new) - tonumber(old))
  end
end
if release then
  redis.call('ZREM', KEYS[#KEYS], ARGV[1])
end
return 1
