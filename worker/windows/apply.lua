-- Apply one batch of one account's events, each at most once. Atomic per
-- account: a crash leaves all of it or none. Reads nothing back for scoring:
-- the worker keeps the account's windows in memory and adds to them what this
-- script reports as applied.
--
-- Exactly-once: every event carries its source ("topic:partition") and offset.
-- The state hash keeps the last applied offset per source (off:<source>); an
-- event at or below it was applied before (a re-delivery after a crash or a
-- rebalance) and is skipped. An event whose id digest is in the recent-ids set
-- (or earlier in this batch) is a producer duplicate (same event, another
-- offset) and is skipped too.
--
-- The worker sends the events' sum, not each event's writes: a few commands per
-- account and batch instead of a few per event. The sum is only right for the
-- events it covers, so the call also names them: ``expect`` has the letter the
-- worker expects for each event, a(pplied), r(eplayed) or d(uplicate). When
-- the letters found here differ, nothing at all is written and they are
-- returned with ver = -1: the worker sums the events these letters apply and
-- calls again. (It expects all applied first: replays and duplicates are rare.)
--
-- Every call that writes counts the state hash's "ver" up and returns it: a
-- worker whose copy of the account is not exactly one behind knows someone else
-- wrote (or Redis lost writes) and loads the account again.
--
-- KEYS: 1 counters hash, 2 users zset, 3 features zset, 4 state hash, 5 recent event ids zset
-- ARGV, flat (Lua reads them for free; a JSON argument costs a decode per call):
--   now_s, ttl_seconds, ids_ttl_seconds, ids_max,
--   maintain (1: prune what no window reaches and refresh every key's expiry),
--   members_before, ids_before       pruning cut-offs (epoch seconds)
--   n, field * n                     expired counter fields to delete (when maintaining)
--   n, source * n                    the sources of the events
--   expect                           one letter per event
--   n, (source index, offset, id_digest) * n
--   n, (counter field, delta) * n    the applied events' sum, "bucket|counter"
--   n, (ts, member) * n              users: each one's latest time
--   n, (ts, member) * n              features: the same
--   n, (field, value) * n            state hash fields to set
--   n, field * n                     state hash fields to delete
-- Returns: {ver, status}; ver = -1: status is not what was expected, nothing written.

local i = 1
local function take()
  local v = ARGV[i]
  i = i + 1
  return v
end
local function list(width)
  local out = {}
  for j = 1, tonumber(take()) * width do
    out[j] = take()
  end
  return out
end

-- Lua's unpack() takes some thousands of values: longer lists go in parts (even-sized,
-- so pairs stay whole).
local PART = 4000
local function call_in_parts(command, key, option, values)
  for first = 1, #values, PART do
    local last = math.min(first + PART - 1, #values)
    if option then
      redis.call(command, key, option, unpack(values, first, last))
    else
      redis.call(command, key, unpack(values, first, last))
    end
  end
end

local now_s, ttl, ids_ttl, ids_max = take(), take(), take(), tonumber(take())
local maintain = take() == '1'
local members_before, ids_before = take(), take()
local expired = list(1)
local sources = list(1)
local expect = take()
local events = list(3)
local counters = list(2)
local users = list(2)
local features = list(2)
local sets = list(2)
local deletes = list(1)

-- The letters, from the fences and the recent ids; nothing is written yet.
local fenced = {}
if #sources > 0 then
  local names = {}
  for j, source in ipairs(sources) do
    names[j] = 'off:' .. source
  end
  local got = redis.call('HMGET', KEYS[4], unpack(names))
  for j = 1, #sources do
    fenced[j] = tonumber(got[j] or '-1')
  end
end
local status, candidates = {}, {}
for e = 1, #events / 3 do
  local source, offset = tonumber(events[3 * e - 2]), tonumber(events[3 * e - 1])
  if offset <= fenced[source] then
    status[e] = 'r'
  else
    fenced[source] = offset -- a duplicate's offset is done with too
    status[e] = 'a'
    candidates[#candidates + 1] = e
  end
end
local fresh = {}
for first = 1, #candidates, PART do
  local digests = {}
  for j = first, math.min(first + PART - 1, #candidates) do
    digests[#digests + 1] = events[3 * candidates[j]]
  end
  local scores = redis.call('ZMSCORE', KEYS[5], unpack(digests))
  for j, digest in ipairs(digests) do
    local e = candidates[first + j - 1]
    if scores[j] or fresh[digest] then
      status[e] = 'd'
    else
      fresh[digest] = true
    end
  end
end
status = table.concat(status)
if status ~= expect then
  return {-1, status}
end

-- As expected: write it all.
local ids = {}
for digest in pairs(fresh) do
  ids[#ids + 1] = now_s
  ids[#ids + 1] = digest
end
if #ids > 0 then
  -- NX: a digest already there keeps its first time.
  call_in_parts('ZADD', KEYS[5], 'NX', ids)
  if redis.call('ZCARD', KEYS[5]) > ids_max then
    redis.call('ZREMRANGEBYRANK', KEYS[5], 0, -(ids_max + 1))
  end
end
if #counters > 0 then
  -- One read and one write for all of them, instead of an HINCRBYFLOAT each.
  local names = {}
  for j = 1, #counters / 2 do
    names[j] = counters[2 * j - 1]
  end
  local totals = {}
  for first = 1, #names, PART do
    local last = math.min(first + PART - 1, #names)
    local got = redis.call('HMGET', KEYS[1], unpack(names, first, last))
    for j = first, last do
      local sum = tonumber(got[j - first + 1] or '0') + tonumber(counters[2 * j])
      totals[#totals + 1] = names[j]
      -- 17 significant digits: the double exactly, where tostring keeps 14.
      totals[#totals + 1] = string.format('%.17g', sum)
    end
  end
  call_in_parts('HSET', KEYS[1], nil, totals)
end
-- GT: a late event never moves a last-seen time backwards.
if #users > 0 then
  call_in_parts('ZADD', KEYS[2], 'GT', users)
end
if #features > 0 then
  call_in_parts('ZADD', KEYS[3], 'GT', features)
end

local writes = {}
for j, source in ipairs(sources) do
  writes[#writes + 1] = 'off:' .. source
  writes[#writes + 1] = string.format('%d', fenced[j])
end
for _, value in ipairs(sets) do
  writes[#writes + 1] = value
end
if #writes > 0 then
  redis.call('HSET', KEYS[4], unpack(writes))
end
if #deletes > 0 then
  redis.call('HDEL', KEYS[4], unpack(deletes))
end

if maintain then
  if #expired > 0 then
    call_in_parts('HDEL', KEYS[1], nil, expired)
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. members_before)
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. members_before)
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', '(' .. ids_before)
  -- Window sums and component values earlier versions kept: the worker keeps them now.
  redis.call('HDEL', KEYS[4], 'sums', 'values', 'stamp')
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
return {redis.call('HINCRBY', KEYS[4], 'ver', 1), status}
