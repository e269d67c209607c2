-- Apply one batch of one account's window writes, then read back what scoring needs.
-- Atomic per account: a crash leaves either all of a batch's writes or none.
--
-- KEYS: 1 counters hash, 2 users zset, 3 features zset, 4 state hash
-- ARGV: now_bucket, keep_from_bucket, bucket_seconds, ttl_seconds, cache_stamp, then
--   n, (field, delta) * n        counter increments
--   n, (ts, user) * n            users last seen
--   n, (ts, feature) * n         features last seen
--   n, (field, value) * n        state hash fields to set
--   n, field * n                 state hash fields to delete
--   n, window * n                windows (in buckets) to read when the cache is valid
--   n, window * n                windows to read when it is not (all of the model's)
-- Returns: {cache_valid, {window, {counter, sum, ...}, users, features} ..., state hash}

local now_b = tonumber(ARGV[1])
local keep_from = tonumber(ARGV[2])
local bucket_s = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
local stamp = ARGV[5]
local i = 6
local function take()
  local v = ARGV[i]
  i = i + 1
  return v
end

local wrote = false
local n = tonumber(take())
for _ = 1, n do
  redis.call('HINCRBYFLOAT', KEYS[1], take(), take())
  wrote = true
end
for k = 2, 3 do
  n = tonumber(take())
  for _ = 1, n do
    -- GT: a late event never moves a last-seen time backwards.
    redis.call('ZADD', KEYS[k], 'GT', take(), take())
    wrote = true
  end
end
n = tonumber(take())
for _ = 1, n do
  redis.call('HSET', KEYS[4], take(), take())
end
n = tonumber(take())
for _ = 1, n do
  redis.call('HDEL', KEYS[4], take())
end

local function windows()
  local list = {}
  local count = tonumber(take())
  for _ = 1, count do
    list[#list + 1] = tonumber(take())
  end
  return list
end
local touched = windows()
local all = windows()
local cache_valid = redis.call('HGET', KEYS[4], 'stamp') == stamp
local wanted = all
if cache_valid then
  wanted = touched
end

local sums = {}
for w = 1, #wanted do
  sums[w] = {}
end
local fields = redis.call('HGETALL', KEYS[1])
for j = 1, #fields, 2 do
  local b, name = string.match(fields[j], '^(%-?%d+)|(.+)$')
  b = tonumber(b)
  if b < keep_from then
    if wrote then
      redis.call('HDEL', KEYS[1], fields[j])
    end
  else
    local value = tonumber(fields[j + 1])
    for w = 1, #wanted do
      if b > now_b - wanted[w] then
        sums[w][name] = (sums[w][name] or 0) + value
      end
    end
  end
end

if wrote then
  local cutoff = '(' .. (keep_from * bucket_s)
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', cutoff)
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', cutoff)
  for k = 1, 3 do
    redis.call('EXPIRE', KEYS[k], ttl)
  end
end

local out = {cache_valid and 1 or 0}
for w = 1, #wanted do
  local flat = {}
  for name, value in pairs(sums[w]) do
    flat[#flat + 1] = name
    flat[#flat + 1] = tostring(value)
  end
  local since = (now_b - wanted[w] + 1) * bucket_s
  out[#out + 1] = {
    wanted[w], flat,
    redis.call('ZCOUNT', KEYS[2], since, '+inf'),
    redis.call('ZCOUNT', KEYS[3], since, '+inf'),
  }
end
out[#out + 1] = redis.call('HGETALL', KEYS[4])
return out
