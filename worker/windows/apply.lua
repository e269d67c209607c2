-- Apply one batch of one account's events, each at most once. Atomic per
-- account: a crash leaves all of it or none. Reads nothing back for scoring:
-- the worker keeps the account's windows in memory and adds to them what this
-- script reports as applied.
--
-- Exactly-once: every event carries its source ("topic:partition") and offset.
-- The state hash keeps the last applied offset per source (off:<source>); an
-- event at or below it was applied before (a re-delivery after a crash or a
-- rebalance) and is skipped. An event whose id digest is in the recent-ids set
-- is a producer duplicate (same event, another offset) and is skipped too.
--
-- Every call counts the state hash's "ver" up and returns it: a worker whose
-- copy of the account is not exactly one behind knows someone else wrote (or
-- Redis lost writes) and loads the account again.
--
-- KEYS: 1 counters hash, 2 users zset, 3 features zset, 4 state hash, 5 recent event ids zset
-- ARGV, flat (Lua reads them for free; a JSON argument costs a decode per call):
--   now_s, ttl_seconds, ids_ttl_seconds, ids_max,
--   maintain (1: prune what no window reaches and refresh every key's expiry),
--   members_before, ids_before       pruning cut-offs (epoch seconds)
--   n, field * n                     expired counter fields to delete (when maintaining)
--   n, source * n                    the sources of the events
--   n, events * n: source, offset, id_digest, ts, bucket, k, (counter, delta) * k,
--                  d, (set, member) * d
--   n, (field, value) * n            state hash fields to set
--   n, field * n                     state hash fields to delete
-- Returns: {ver, status}, status one letter per event: a(pplied), r(eplayed), d(uplicate).

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

local now_s, ttl, ids_ttl, ids_max = take(), take(), take(), tonumber(take())
local maintain = take() == '1'
local members_before, ids_before = take(), take()
local expired = list()
local sources = list()
local fenced = {}
if #sources > 0 then
  local names = {}
  for j, source in ipairs(sources) do
    names[j] = 'off:' .. source
  end
  local got = redis.call('HMGET', KEYS[4], unpack(names))
  for j, source in ipairs(sources) do
    fenced[source] = tonumber(got[j] or '-1')
  end
end

local SETS = {users = 2, features = 3}
local wrote_ids = false
local status = {}
for e = 1, tonumber(take()) do
  local source, offset, digest, ts, bucket = take(), tonumber(take()), take(), take(), take()
  local letter = 'a'
  if offset <= fenced[source] then
    letter = 'r'
  -- NX: a digest already there is a producer duplicate, and keeps its first time.
  elseif redis.call('ZADD', KEYS[5], 'NX', now_s, digest) == 0 then
    letter = 'd'
  else
    wrote_ids = true
  end
  if letter ~= 'r' then
    fenced[source] = offset -- a duplicate's offset is done with too
  end
  status[e] = letter
  for _ = 1, tonumber(take()) do
    local counter, delta = take(), take()
    if letter == 'a' then
      redis.call('HINCRBYFLOAT', KEYS[1], bucket .. '|' .. counter, delta)
    end
  end
  for _ = 1, tonumber(take()) do
    local set, member = take(), take()
    if letter == 'a' then
      -- GT: a late event never moves a last-seen time backwards.
      redis.call('ZADD', KEYS[SETS[set]], 'GT', ts, member)
    end
  end
end

local writes = {}
for source, offset in pairs(fenced) do
  writes[#writes + 1] = 'off:' .. source
  writes[#writes + 1] = string.format('%d', offset)
end
for _ = 1, tonumber(take()) do
  writes[#writes + 1] = take()
  writes[#writes + 1] = take()
end
local deletes = list()
if #writes > 0 then
  redis.call('HSET', KEYS[4], unpack(writes))
end
if #deletes > 0 then
  redis.call('HDEL', KEYS[4], unpack(deletes))
end
if wrote_ids and redis.call('ZCARD', KEYS[5]) > ids_max then
  redis.call('ZREMRANGEBYRANK', KEYS[5], 0, -(ids_max + 1))
end

if maintain then
  if #expired > 0 then
    redis.call('HDEL', KEYS[1], unpack(expired))
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. members_before)
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. members_before)
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', '(' .. ids_before)
  -- Window sums of an earlier version of this script: the worker keeps them now.
  redis.call('HDEL', KEYS[4], 'sums')
  -- A window key outlives the account's last maintenance by the longest window:
  -- nothing still inside a window expires, a silent account's keys go by
  -- themselves. Maintenance comes with the account's first call in every bucket,
  -- and an account with data in a window is due for a call when it leaves it, so
  -- a key created later in a bucket gets its expiry at the latest then.
  for k = 1, 3 do
    redis.call('EXPIRE', KEYS[k], ttl)
  end
  redis.call('EXPIRE', KEYS[5], ids_ttl)
end
return {redis.call('HINCRBY', KEYS[4], 'ver', 1), table.concat(status)}
