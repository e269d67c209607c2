-- Apply one batch of one account's events, each at most once, then read back
-- what scoring needs. Atomic per account: a crash leaves all of it or none.
--
-- Exactly-once: every event carries its source ("topic:partition") and offset.
-- The state hash keeps the last applied offset per source (off:<source>); an
-- event at or below it was applied before (a re-delivery after a crash or a
-- rebalance) and is skipped. An event whose id digest is in the recent-ids set
-- is a producer duplicate (same event, another offset) and is skipped too.
--
-- KEYS: 1 counters hash, 2 users zset, 3 features zset, 4 state hash, 5 recent event ids zset
-- ARGV: now, now_bucket, keep_from_bucket, bucket_seconds, ttl_seconds, cache_stamp,
--       dedup_horizon_seconds, dedup_max_ids, then
--   n, events * n: source, offset, id_digest, ts, k, (field, delta) * k, d, (set, member) * d
--   n, (field, value) * n        state hash fields to set
--   n, field * n                 state hash fields to delete
--   n, window * n                windows (in buckets) to read when the cache is valid
--   n, window * n                windows to read when it is not (all of the model's)
-- Returns: {{cache_valid, applied, replayed, duplicates, next_change_bucket},
--           {window, {counter, sum, ...}, users, features} ..., state hash}

local now = tonumber(ARGV[1])
local now_b = tonumber(ARGV[2])
local keep_from = tonumber(ARGV[3])
local bucket_s = tonumber(ARGV[4])
local ttl = tonumber(ARGV[5])
local stamp = ARGV[6]
local dedup_horizon = tonumber(ARGV[7])
local dedup_max = tonumber(ARGV[8])
local i = 9
local function take()
  local v = ARGV[i]
  i = i + 1
  return v
end

local SETS = {users = KEYS[2], features = KEYS[3]}
local fences = {}
local applied, replayed, duplicates = 0, 0, 0

local n = tonumber(take())
for _ = 1, n do
  local source, offset, digest, ts = take(), tonumber(take()), take(), take()
  local fence = fences[source]
  if fence == nil then
    fence = tonumber(redis.call('HGET', KEYS[4], 'off:' .. source) or '-1')
  end
  local incs = tonumber(take())
  local fresh = offset > fence
  if not fresh then
    replayed = replayed + 1
  elseif redis.call('ZSCORE', KEYS[5], digest) then
    duplicates = duplicates + 1
    fresh = false
  end
  for _ = 1, incs do
    local field, delta = take(), take()
    if fresh then
      redis.call('HINCRBYFLOAT', KEYS[1], field, delta)
    end
  end
  local dists = tonumber(take())
  for _ = 1, dists do
    local set, member = take(), take()
    if fresh then
      -- GT: a late event never moves a last-seen time backwards.
      redis.call('ZADD', SETS[set], 'GT', ts, member)
    end
  end
  if fresh then
    applied = applied + 1
    redis.call('ZADD', KEYS[5], now, digest)
  end
  if offset > fence then
    fences[source] = offset
  else
    fences[source] = fence
  end
end
for source, offset in pairs(fences) do
  redis.call('HSET', KEYS[4], 'off:' .. source, offset)
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

local wrote = applied > 0
-- The first bucket in which some data leaves one of the model's windows: the
-- account's score can change then without any event (silence is a signal).
local next_change = -1
local function leaves(b)
  for w = 1, #all do
    if b > now_b - all[w] then
      local at = b + all[w]
      if next_change < 0 or at < next_change then
        next_change = at
      end
    end
  end
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
    leaves(b)
    local value = tonumber(fields[j + 1])
    for w = 1, #wanted do
      if b > now_b - wanted[w] then
        sums[w][name] = (sums[w][name] or 0) + value
      end
    end
  end
end
for k = 2, 3 do
  for w = 1, #all do
    local oldest = redis.call('ZRANGEBYSCORE', KEYS[k], (now_b - all[w] + 1) * bucket_s, '+inf',
                              'WITHSCORES', 'LIMIT', 0, 1)
    if #oldest > 0 then
      leaves(math.floor(tonumber(oldest[2]) / bucket_s))
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
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', '(' .. (now - dedup_horizon))
  redis.call('ZREMRANGEBYRANK', KEYS[5], 0, -(dedup_max + 1))
  redis.call('EXPIRE', KEYS[5], math.ceil(dedup_horizon))
end

local out = {{cache_valid and 1 or 0, applied, replayed, duplicates, next_change}}
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
