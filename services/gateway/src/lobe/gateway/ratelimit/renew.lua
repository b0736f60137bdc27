-- Keep leases alive: requests still in flight on this gateway get another lease from now.
-- KEYS: [1] the in-flight set. ARGV: [1] lease in ms, then the members (request ids).
-- XX: a lease that ran out (or was released) is not brought back.
redis.replicate_commands()  -- effects replication, needed for TIME before writes on Redis < 5
local clock = redis.call('TIME')
local until_ms = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000) + tonumber(ARGV[1])
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], 'XX', until_ms, ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
