-- Apply one batch of one account's events, each at most once, then read back
-- what scoring needs. Atomic per account: a crash leaves all of it or none.
--
-- Exactly-once: every event carries its source ("topic:partition") and offset.
-- The state hash keeps the last applied offset per source (off:<source>); an
-- event at or below it was applied before (a re-delivery after a crash or a
-- rebalance) and is skipped. An event whose id digest is in the recent-ids set
-- is a producer duplicate (same event, another offset) and is skipped too.
--
-- Window sums: the counters hash holds one field per (day bucket, counter), and
-- summing it is most of the cost of a call. So the sums of every window are kept
-- in the state hash (field "sums") with the stamp of the bucket they were summed
-- at; while the stamp holds, the batch's increments are added to them, and only
-- the first call of a new bucket (or a forced read) sums the hash again. That is
-- also when expired buckets and set members are pruned.
--
-- KEYS: 1 counters hash, 2 users zset, 3 features zset, 4 state hash, 5 recent event ids zset
-- ARGV, flat (Lua reads them for free; a JSON argument costs a decode per call):
--   now, now_b, keep_from, bucket_s, ttl_seconds, stamp, dedup_horizon, dedup_max,
--   force (1: sum the windows again and return all of them, whatever the stamp),
--   n, window * n                the model's windows, in buckets
--   n, field * n                 state hash fields to return
--   n, window * n                windows the batch touched
--   n, source * n                the sources ("topic:partition") of the events
--   n, events * n: source, offset, id_digest, ts, bucket, k, (counter, delta) * k,
--                  d, (set, member) * d
--   n, (field, value) * n        state hash fields to set
--   n, field * n                 state hash fields to delete
-- Returns: {header, field values...}, header a JSON array:
--   [values_valid, applied, replayed, duplicates, next_change_bucket,
--    [[window, {counter: sum}, users, features], ...]]

local i = 1
local function take()
  local v = ARGV[i]
  i = i + 1
  return v
end
local function list()
  local out = {}
  for j = 1, tonumber(take()) do
    out[j] = take()
  end
  return out
end

local ctx = {
  now = tonumber(take()), now_b = tonumber(take()), keep_from = tonumber(take()),
  bucket_s = tonumber(take()), ttl = tonumber(take()), stamp = take(),
  dedup_horizon = tonumber(take()), dedup_max = tonumber(take()),
}
local force = take() == '1'
-- Whole seconds for the recent ids' times: the horizon needs no more, and Redis
-- stores an integral score in a few bytes where a fraction takes twenty.
ctx.now_s = string.format('%d', math.floor(ctx.now))
local all = list()
for w = 1, #all do
  all[w] = tonumber(all[w])
end
ctx.fields = list()
local touched = {}
for _, w in ipairs(list()) do
  touched[tonumber(w)] = true
end
local now_b, bucket_s = ctx.now_b, ctx.bucket_s

-- Every state-hash field the call reads, in one HMGET: the fields scoring needs,
-- the cache and its stamps, and the fences of the batch's sources.
local names = {'sums', 'stamp'}
for _, field in ipairs(ctx.fields) do
  names[#names + 1] = field
end
local fence_at = {}
for _, source in ipairs(list()) do
  names[#names + 1] = 'off:' .. source
  fence_at[source] = #names
end
local got = redis.call('HMGET', KEYS[4], unpack(names))
local state = {}
for j, field in ipairs(names) do
  state[field] = got[j]
end

-- An account with no windows yet (a new one, or one whose keys expired after a
-- long silence) needs no summing: its sums are exactly what this call adds.
local unwindowed = not force and not state.sums
  and redis.call('EXISTS', KEYS[1], KEYS[2], KEYS[3]) == 0

local SETS = {users = KEYS[2], features = KEYS[3]}
local fences = {}
local writes = {} -- state hash fields to set, as HSET arguments
local applied, replayed, duplicates = 0, 0, 0
local added = {} -- what was applied: {bucket, counter, delta} or {bucket} for a set member

for _ = 1, tonumber(take()) do
  local source, offset, digest, ts, bucket = take(), tonumber(take()), take(), take(), take()
  local fence = fences[source] or tonumber(got[fence_at[source]] or '-1')
  local fresh = offset > fence
  if not fresh then
    replayed = replayed + 1
  -- NX: a digest already there is a producer duplicate, and keeps its first time.
  elseif redis.call('ZADD', KEYS[5], 'NX', ctx.now_s, digest) == 0 then
    duplicates = duplicates + 1
    fresh = false
  end
  for _ = 1, tonumber(take()) do
    local counter, delta = take(), take()
    if fresh then
      redis.call('HINCRBYFLOAT', KEYS[1], bucket .. '|' .. counter, delta)
      added[#added + 1] = {tonumber(bucket), counter, delta}
    end
  end
  for _ = 1, tonumber(take()) do
    local set, member = take(), take()
    if fresh then
      -- GT: a late event never moves a last-seen time backwards.
      redis.call('ZADD', SETS[set], 'GT', ts, member)
      added[#added + 1] = {math.floor(ts / bucket_s)}
    end
  end
  if fresh then
    applied = applied + 1
  end
  fences[source] = math.max(offset, fence)
end
local sets = {}
for j = 1, 2 * tonumber(take()) do
  sets[j] = take()
end
local deletes = list()
for source, offset in pairs(fences) do
  writes[#writes + 1] = 'off:' .. source
  writes[#writes + 1] = string.format('%d', offset)
end
for j = 1, #sets, 2 do
  writes[#writes + 1] = sets[j]
  writes[#writes + 1] = sets[j + 1]
  state[sets[j]] = sets[j + 1]
end
for _, field in ipairs(deletes) do
  state[field] = false
end
if #deletes > 0 then
  redis.call('HDEL', KEYS[4], unpack(deletes))
end

local wrote = applied > 0
if wrote and redis.call('ZCARD', KEYS[5]) > ctx.dedup_max then
  redis.call('ZREMRANGEBYRANK', KEYS[5], 0, -(ctx.dedup_max + 1))
end

-- The first bucket in which some data leaves one of the model's windows: the
-- account's score can change then without any event (silence is a signal).
local function leaves(cache, b)
  for w = 1, #all do
    if b > now_b - all[w] then
      local at = b + all[w]
      if cache.next < 0 or at < cache.next then
        cache.next = at
      end
    end
  end
end

-- Sum every window from the counters hash; prune what no window reaches any more.
-- Runs at most once per account and bucket (and on a forced read), so the key
-- expiries are refreshed here too: a silent account still comes here when its
-- windows roll.
local function summed()
  local cache = {stamp = ctx.stamp, next = -1, sums = {}}
  for w = 1, #all do
    cache.sums[w] = {}
  end
  local fields = redis.call('HGETALL', KEYS[1])
  local expired = {}
  for j = 1, #fields, 2 do
    local b, name = string.match(fields[j], '^(%-?%d+)|(.+)$')
    b = tonumber(b)
    if b < ctx.keep_from then
      expired[#expired + 1] = fields[j]
    else
      leaves(cache, b)
      local value = tonumber(fields[j + 1])
      for w = 1, #all do
        if b > now_b - all[w] then
          cache.sums[w][name] = (cache.sums[w][name] or 0) + value
        end
      end
    end
  end
  for k = 2, 3 do
    for w = 1, #all do
      local oldest = redis.call('ZRANGEBYSCORE', KEYS[k], (now_b - all[w] + 1) * bucket_s,
                                '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
      if #oldest > 0 then
        leaves(cache, math.floor(tonumber(oldest[2]) / bucket_s))
      end
    end
  end
  if #expired > 0 then
    redis.call('HDEL', KEYS[1], unpack(expired))
  end
  local cutoff = '(' .. (ctx.keep_from * bucket_s)
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', cutoff)
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', cutoff)
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', '(' .. (ctx.now - ctx.dedup_horizon))
  for k = 1, 3 do
    redis.call('EXPIRE', KEYS[k], ctx.ttl)
  end
  -- Until the next summing at the latest: no id leaves before its horizon.
  redis.call('EXPIRE', KEYS[5], math.ceil(ctx.dedup_horizon + bucket_s))
  return cache
end

local function add_applied(cache)
  for _, a in ipairs(added) do
    local b = a[1]
    leaves(cache, b)
    if a[2] then
      for w = 1, #all do
        if b > now_b - all[w] then
          local sums = cache.sums[w]
          sums[a[2]] = (sums[a[2]] or 0) + a[3]
        end
      end
    end
  end
end

local cache = nil
if state.sums then
  cache = cjson.decode(state.sums)
end
local cache_valid = cache ~= nil and cache.stamp == ctx.stamp and not force
if cache_valid then
  add_applied(cache)
elseif unwindowed then
  cache = {stamp = ctx.stamp, next = -1, sums = {}}
  for w = 1, #all do
    cache.sums[w] = {}
  end
  add_applied(cache)
  if wrote then
    for k = 1, 3 do
      redis.call('EXPIRE', KEYS[k], ctx.ttl)
    end
    redis.call('EXPIRE', KEYS[5], math.ceil(ctx.dedup_horizon + bucket_s))
  end
else
  cache = summed()
end
if wrote or (not cache_valid and (#writes > 0 or redis.call('EXISTS', KEYS[4]) == 1)) then
  -- The fixed window count keeps every table's shape unambiguous to cjson.
  writes[#writes + 1] = 'sums'
  writes[#writes + 1] = cjson.encode(cache)
end
if #writes > 0 then
  redis.call('HSET', KEYS[4], unpack(writes))
end

local values_valid = state.stamp == ctx.stamp and not force
local out = {}
for w = 1, #all do
  if not values_valid or touched[all[w]] then
    local since = (now_b - all[w] + 1) * bucket_s
    out[#out + 1] = {
      all[w], cache.sums[w],
      redis.call('ZCOUNT', KEYS[2], since, '+inf'),
      redis.call('ZCOUNT', KEYS[3], since, '+inf'),
    }
  end
end
-- The fields hold JSON of their own: returned as they are, not escaped into the header.
local reply = {cjson.encode({values_valid, applied, replayed, duplicates, cache.next, out})}
for j, field in ipairs(ctx.fields) do
  reply[j + 1] = state[field]
end
return reply
