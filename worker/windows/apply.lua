-- Apply one batch of events to each of some accounts, each event at most once.
-- Atomic: a crash leaves all of it or none. Reads nothing back for scoring: the
-- worker keeps the accounts' windows in memory and adds to them what this script
-- reports as applied.
--
-- Exactly-once: every event carries its source ("topic:partition") and offset.
-- The state hash keeps the last applied offset per source (off:<source>); an
-- event at or below it was applied before (a re-delivery after a crash or a
-- rebalance) and is skipped. An event whose digest (of its type and id) is in the
-- recent-ids set (or earlier in this batch) is a producer duplicate (same event,
-- another offset) and is skipped too.
--
-- The worker sends the events' sum, not each event's writes: a few commands per
-- account and batch instead of a few per event. The sum is only right for the
-- events it covers, so the call also names them: ``expect`` has the letter the
-- worker expects for each event, a(pplied), r(eplayed) or d(uplicate). When
-- the letters found here differ, nothing at all is written for that account and
-- they are returned with ver = -1: the worker sums the events these letters apply
-- and calls again for it. (It expects all applied first: replays and duplicates
-- are rare.)
--
-- Every account written counts its state hash's "ver" up and returns it: a
-- worker whose copy of the account is not exactly one behind knows someone else
-- wrote (or Redis lost writes) and loads the account again.
--
-- One call takes many accounts: the call's own cost (about a tenth of a one-event
-- account's) is paid once. Their keys span as many cluster slots as accounts; on
-- a Redis Cluster the worker calls it with one account at a time (``scriptcall``).
--
-- KEYS, 3 + n_distinct per account: counters hash, state hash, recent event ids zset,
--   then one zset per distinct set (member -> last seen), the same sets for all
-- ARGV, flat (Lua reads them for free; a JSON argument costs a decode per call). Lists
-- of numbers per event or counter come packed in one argument each (``struct``): one
-- string for Redis to take in and for the worker to send instead of a dozen, no number
-- written as text and read back, and a double passed exactly.
--   now_s, ttl_seconds, ids_ttl_seconds, ids_max, n_distinct, n_accounts, then per account:
--   maintain (1: prune what no window reaches and refresh every key's expiry),
--   members_before, ids_before       pruning cut-offs (epoch seconds)
--   n, field * n                     expired counter fields to delete (when maintaining)
--   n, source * n                    the sources of the events
--   expect                           one letter per event
--   n, events                        per event, packed (little-endian): its source's
--                                    index (uint16), offset (int64), id digest (8 bytes)
--   n, field * n, deltas             the applied events' sum per "bucket|counter";
--                                    deltas packed, one double each
--   (n, (ts, member) * n) * n_distinct   per distinct set: each member's latest time
--   n, (field, value) * n            state hash fields to set
--   n, field * n                     state hash fields to delete
-- Returns, per account: ver, status; ver = -1: status is not what was expected,
-- nothing written for that account; ver = 0: its state hash was deleted (a tombstone
-- left nothing in it).
--
-- Written for speed: Lua's own work (allocations above all) costs more than the
-- commands. Lists are read in place from ARGV and handed to commands as ranges
-- of it, not copied into tables.

local argv = ARGV
-- Lua's unpack() takes some thousands of values: longer ranges go in parts (even-sized,
-- so pairs stay whole).
local PART = 4000

-- A list in ARGV at ``at``: its count, then ``width`` values per item. Returns the
-- index of its first value, its count, and the index after it.
local function list(at, width)
  local n = tonumber(argv[at])
  return at + 1, n, at + 1 + n * width
end

-- command key [option] argv[first..last], in parts
local function call_range(command, key, option, first, last)
  for from = first, last, PART do
    local to = math.min(from + PART - 1, last)
    if option then
      redis.call(command, key, option, unpack(argv, from, to))
    else
      redis.call(command, key, unpack(argv, from, to))
    end
  end
end

local now_s, ttl_seconds, ids_ttl_seconds = argv[1], argv[2], argv[3]
local ids_max = tonumber(argv[4])
local n_distinct = tonumber(argv[5])

-- The account whose keys are KEYS[k + 1 .. k + 3 + n_distinct] and whose arguments start
-- at argv[at]. Returns the index after its arguments, its ver and its status.
local function apply(k, at)
  local counters_key, state_key, ids_key = KEYS[k + 1], KEYS[k + 2], KEYS[k + 3]
  local maintain = argv[at] == '1'
  local members_before, ids_before = argv[at + 1], argv[at + 2]
  local expired_at, n_expired
  expired_at, n_expired, at = list(at + 3, 1)
  local sources_at, n_sources
  sources_at, n_sources, at = list(at, 1)
  local expect = argv[at]
  local n_events = tonumber(argv[at + 1])
  local events = argv[at + 2]
  local counters_at, n_counters
  counters_at, n_counters, at = list(at + 3, 1)
  local deltas = argv[at]
  at = at + 1
  -- The distinct sets' lists, one after the other: skipped here, read where written
  -- (walking them twice costs less than a table per account).
  local members_at = at
  for _ = 1, n_distinct do
    at = at + 1 + 2 * tonumber(argv[at])
  end
  local sets_at, n_sets
  sets_at, n_sets, at = list(at, 2)
  local deletes_at, n_deletes
  deletes_at, n_deletes, at = list(at, 1)

  -- The letters, from the fences and the recent ids; nothing is written yet.
  local fenced, advanced, ver = {}, {}, nil
  if n_sources > 0 then
    -- The fences and the write count in one read; the write count is then set with
    -- the fences instead of counted up by a command of its own.
    local names = {}
    for j = 1, n_sources do
      names[j] = 'off:' .. argv[sources_at + j - 1]
    end
    names[n_sources + 1] = 'ver'
    local got = redis.call('HMGET', state_key, unpack(names))
    for j = 1, n_sources do
      fenced[j] = tonumber(got[j] or '-1')
    end
    ver = tonumber(got[n_sources + 1] or '0') + 1
  end
  local status, digests, candidates = {}, {}, {}
  for e = 1, n_events do
    local source, offset, digest = struct.unpack('<Hi8c8', events, 18 * e - 17)
    if offset <= fenced[source] then
      status[e] = 'r'
    else
      fenced[source] = offset -- a duplicate's offset is done with too
      advanced[source] = offset
      status[e] = 'a'
      candidates[#candidates + 1] = e
      digests[#digests + 1] = digest
    end
  end
  local fresh, added = {}, nil
  if #digests == 1 then
    -- One id, a live stream's usual call: ZADD NX asks and adds at once (NX: a digest
    -- already there is a duplicate and keeps its first time).
    if redis.call('ZADD', ids_key, 'NX', now_s, digests[1]) == 0 then
      status[candidates[1]] = 'd'
    else
      added = digests[1]
    end
  else
    for first = 1, #digests, PART do
      local last = math.min(first + PART - 1, #digests)
      local scores = redis.call('ZMSCORE', ids_key, unpack(digests, first, last))
      for j = first, last do
        local digest = digests[j]
        if scores[j - first + 1] or fresh[digest] then
          status[candidates[j]] = 'd'
        else
          fresh[digest] = true
        end
      end
    end
  end
  status = table.concat(status)
  if status ~= expect then
    if added then
      redis.call('ZREM', ids_key, added) -- nothing at all written
    end
    return at, -1, status
  end

  -- As expected: write it all.
  local ids = {}
  for digest in pairs(fresh) do
    ids[#ids + 1] = now_s
    ids[#ids + 1] = digest
  end
  for first = 1, #ids, PART do
    redis.call('ZADD', ids_key, 'NX', unpack(ids, first, math.min(first + PART - 1, #ids)))
  end
  -- Counted on every call that adds: an upper bound kept in the state hash instead
  -- (one field more to read and write) cost Redis more than the ZCARD it saved.
  if added or #ids > 0 then
    if redis.call('ZCARD', ids_key) > ids_max then
      redis.call('ZREMRANGEBYRANK', ids_key, 0, -(ids_max + 1))
    end
  end
  -- One read and one write for all counters, instead of an HINCRBYFLOAT each.
  for first = 0, n_counters - 1, PART / 2 do
    local last = math.min(first + PART / 2, n_counters) - 1
    local got = redis.call('HMGET', counters_key,
                           unpack(argv, counters_at + first, counters_at + last))
    local totals = {}
    for j = first, last do
      totals[#totals + 1] = argv[counters_at + j]
      -- A number, not a string: redis.call writes it with 17 significant digits (the
      -- double exactly), in C.
      totals[#totals + 1] = tonumber(got[j - first + 1] or '0')
                            + struct.unpack('<d', deltas, 8 * j + 1)
    end
    redis.call('HSET', counters_key, unpack(totals))
  end
  -- GT: a late event never moves a last-seen time backwards.
  for j = 1, n_distinct do
    local set_at, n_members
    set_at, n_members, members_at = list(members_at, 2)
    if n_members > 0 then
      call_range('ZADD', KEYS[k + 3 + j], 'GT', set_at, set_at + 2 * n_members - 1)
    end
  end

  local writes = {}
  for j, offset in pairs(advanced) do
    writes[#writes + 1] = 'off:' .. argv[sources_at + j - 1]
    writes[#writes + 1] = offset -- a number: written with 17 digits, exact below 2^53
  end
  for j = sets_at, sets_at + 2 * n_sets - 1 do
    writes[#writes + 1] = argv[j]
  end
  if ver then
    writes[#writes + 1] = 'ver'
    writes[#writes + 1] = ver
  end
  if #writes > 0 then
    redis.call('HSET', state_key, unpack(writes))
  end
  if n_deletes > 0 then
    redis.call('HDEL', state_key, unpack(argv, deletes_at, deletes_at + n_deletes - 1))
  end

  if maintain then
    if n_expired > 0 then
      call_range('HDEL', counters_key, nil, expired_at, expired_at + n_expired - 1)
    end
    for j = 1, n_distinct do
      redis.call('ZREMRANGEBYSCORE', KEYS[k + 3 + j], '-inf', '(' .. members_before)
    end
    redis.call('ZREMRANGEBYSCORE', ids_key, '-inf', '(' .. ids_before)
    -- Window sums and component values earlier versions kept: the worker keeps them now.
    redis.call('HDEL', state_key, 'sums', 'values', 'stamp')
    -- A window key outlives the account's last maintenance by the longest window:
    -- nothing still inside a window expires, a silent account's keys go by
    -- themselves. Maintenance comes with the account's first call in every bucket,
    -- and an account with data in a window is due for a call when it leaves it, so
    -- a key created later in a bucket gets its expiry at the latest then.
    redis.call('EXPIRE', counters_key, ttl_seconds)
    for j = 1, n_distinct do
      redis.call('EXPIRE', KEYS[k + 3 + j], ttl_seconds)
    end
    redis.call('EXPIRE', ids_key, ids_ttl_seconds)
  end
  if not ver then
    -- No events. A tombstone that leaves the state hash holding nothing but its write
    -- count (an account never seen, or one known only by the attributes it deletes)
    -- deletes the hash: it has no expiry, and counting it up would keep a key forever
    -- for nothing. ver 0 has the worker load the account again.
    if n_deletes > 0 then
      local left = redis.call('HLEN', state_key)
      if left == 0 or (left == 1 and redis.call('HEXISTS', state_key, 'ver') == 1) then
        redis.call('DEL', state_key)
        return at, 0, status
      end
    end
    ver = redis.call('HINCRBY', state_key, 'ver', 1)
  end
  return at, ver, status
end

local replies, at = {}, 7
for a = 0, tonumber(argv[6]) - 1 do
  local ver, status
  at, ver, status = apply((3 + n_distinct) * a, at)
  replies[2 * a + 1] = ver
  replies[2 * a + 2] = status
end
return replies
