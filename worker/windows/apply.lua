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
-- ARGV 1-10: the batch context: now, now_b, keep_from, bucket_s, ttl, stamp,
--   dedup_horizon, dedup_max, the model's windows (in buckets, comma-separated),
--   the state hash fields to return (comma-separated)
-- ARGV[11]: the account's batch, JSON: [events, sets, deletes, touched windows, force]
--   events: [source, offset, id_digest, ts, bucket, [counter, delta, ...], [set, member, ...]]
--   sets: [field, value, ...] and deletes: [field, ...] of the state hash
--   force: sum the windows again (and return all of them) whatever the stamp
-- Returns JSON: [cache_valid, applied, replayed, duplicates, next_change_bucket,
--                [[window, {counter: sum}, users, features], ...], [field values]]

-- Scalars, not JSON: decoding a JSON context costs more than all of this parsing.
local ctx = {
  now = tonumber(ARGV[1]), now_b = tonumber(ARGV[2]), keep_from = tonumber(ARGV[3]),
  bucket_s = tonumber(ARGV[4]), ttl = tonumber(ARGV[5]), stamp = ARGV[6],
  dedup_horizon = tonumber(ARGV[7]), dedup_max = tonumber(ARGV[8]), windows = {}, fields = {},
}
for w in string.gmatch(ARGV[9], '[^,]+') do
  ctx.windows[#ctx.windows + 1] = tonumber(w)
end
for field in string.gmatch(ARGV[10], '[^,]+') do
  ctx.fields[#ctx.fields + 1] = field
end
local batch = cjson.decode(ARGV[11])
local events, sets, deletes, touched, force = batch[1], batch[2], batch[3], batch[4], batch[5]
local now_b, bucket_s, all = ctx.now_b, ctx.bucket_s, ctx.windows

-- Every state-hash field the call reads, in one HMGET: the fields scoring needs,
-- the cache and its stamps, and the fences of the batch's sources.
local names = {'sums', 'stamp'}
for _, field in ipairs(ctx.fields) do
  names[#names + 1] = field
end
local fence_at = {}
for _, e in ipairs(events) do
  if fence_at[e[1]] == nil then
    names[#names + 1] = 'off:' .. e[1]
    fence_at[e[1]] = #names
  end
end
local got = redis.call('HMGET', KEYS[4], unpack(names))
local state = {}
for j, field in ipairs(names) do
  state[field] = got[j]
end

local SETS = {users = KEYS[2], features = KEYS[3]}
local fences = {}
local writes = {} -- state hash fields to set, as HSET arguments
local applied, replayed, duplicates = 0, 0, 0
local added = {} -- what was applied: {bucket, counter, delta} or {bucket} for a set member

for _, e in ipairs(events) do
  local source, offset, digest, ts, bucket = e[1], e[2], e[3], e[4], e[5]
  local fence = fences[source] or tonumber(got[fence_at[source]] or '-1')
  if offset <= fence then
    replayed = replayed + 1
  -- NX: a digest already there is a producer duplicate, and keeps its first time.
  elseif redis.call('ZADD', KEYS[5], 'NX', ctx.now, digest) == 0 then
    duplicates = duplicates + 1
  else
    local incs, dists = e[6], e[7]
    for j = 1, #incs, 2 do
      redis.call('HINCRBYFLOAT', KEYS[1], bucket .. '|' .. incs[j], incs[j + 1])
      added[#added + 1] = {bucket, incs[j], incs[j + 1]}
    end
    for j = 1, #dists, 2 do
      -- GT: a late event never moves a last-seen time backwards.
      redis.call('ZADD', SETS[dists[j]], 'GT', ts, dists[j + 1])
      added[#added + 1] = {math.floor(ts / bucket_s)}
    end
    applied = applied + 1
  end
  fences[source] = math.max(offset, fence)
end
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

local cache = nil
if state.sums then
  cache = cjson.decode(state.sums)
end
local cache_valid = cache ~= nil and cache.stamp == ctx.stamp and not force
if cache_valid then
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
  if not values_valid or touched[tostring(all[w])] then
    local since = (now_b - all[w] + 1) * bucket_s
    out[#out + 1] = {
      all[w], cache.sums[w],
      redis.call('ZCOUNT', KEYS[2], since, '+inf'),
      redis.call('ZCOUNT', KEYS[3], since, '+inf'),
    }
  end
end
local fields = {}
for j, field in ipairs(ctx.fields) do
  fields[j] = state[field]
end
return cjson.encode({values_valid, applied, replayed, duplicates, cache.next, out, fields})
