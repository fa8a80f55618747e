"""Lua scripts for the atomic read-modify-write steps of aggregated and notification feeds.

Every script touches only keys of one feed (one hash tag), passed in ``KEYS``,
so it runs unchanged on Redis Cluster (a single server may take several feeds
in one call). Timeline keys: ``tl`` (zset of ids, every score 0), ``tv`` (hash
id -> last applied version, negative for a removal) and ``tr`` (zset of removed
ids by version, to forget the oldest). Group keys, in order: ``scores`` (zset
id -> score), ``groups`` (hash id -> data), ``version``, ``unseen`` and
``unread`` (sets of ids), ``index`` (hash activity id -> entry) and ``removed``
(zset of removed activity ids by version).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

REGISTRY: dict[str, Lua] = {}
"""Every script by SHA: a new connection loads them all, so no call meets ``NOSCRIPT``."""


@dataclass(frozen=True, slots=True)
class Lua:
    """A named Lua script; ``RedisServer`` runs it by SHA (loaded on connect, or on demand)."""

    name: str
    source: str
    sha: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())
        REGISTRY[self.sha] = self


_COUNTS_JSON = """
local function counts_json(unseen_key, unread_key)
  return '{"unseen_count":' .. redis.call('SCARD', unseen_key)
      .. ',"unread_count":' .. redis.call('SCARD', unread_key) .. '}'
end
"""

GET_ACTIVITIES = Lua(
    "get_activities",
    """
-- KEYS: the activity hash of each id (a single server only: they span slots).
-- ARGV: the ids. Returns the data of each id, nil where unknown.
local found = {}
for i = 1, #ARGV do
  found[i] = redis.call('HGET', KEYS[i], ARGV[i])
end
return found
""",
)

ACTIVITY_HASHES = """
-- The data and reference-count hashes of an activity id, as keys.activity_key names
-- them: the tag, the id's first 8 digits (its time bucket), its shard (the last
-- three hex digits modulo the shard count).
local function activity_hashes(tag, shards, id)
  local shard = (tonumber(string.sub(id, -3), 16) or 0) % shards
  local base = tag .. string.sub(id, 1, 8) .. ':' .. shard .. '}:'
  return base .. 'a', base .. 'r'
end
"""

_REFERENCES = (
    ACTIVITY_HASHES
    + """
-- A timeline took (hold) or let go of (release) an activity: its count of holders
-- moves, and the data goes with the last holder. ttl < 0: no expiry. Both are
-- summed per id in `moved` and written once per id by flush_refs at the end of the
-- script (a fanout holds one id for every feed of a chunk), so an activity one feed
-- takes and drops at once keeps its data for the other feeds of the call.
local moved = {}
local released = {}

local function hold(id)
  moved[id] = (moved[id] or 0) + 1
end

local function release(id)
  moved[id] = (moved[id] or 0) - 1
  released[id] = true
end

local function flush_refs(tag, shards, ttl)
  for id, n in pairs(moved) do
    local data, refs = activity_hashes(tag, shards, id)
    local left = redis.call('HINCRBY', refs, id, n)
    if released[id] and left <= 0 then
      redis.call('HDEL', data, id)
      redis.call('HDEL', refs, id)
    elseif n > 0 then
      local bucket = tonumber(string.sub(id, 1, 8))
      if ttl >= 0 and bucket then
        redis.call('EXPIREAT', refs, (bucket + 1) * 10000 + ttl)
      end
    end
  end
  moved = {}
  released = {}
end
"""
)

READ_PAGE = Lua(
    "read_page",
    ACTIVITY_HASHES
    + """
-- KEYS: the timeline (a single server only: the activity hashes span slots).
-- ARGV: the activity tag, the shard count, then the range command and its
-- arguments. Returns ids and data, alternating.
local ids = redis.call(ARGV[3], KEYS[1], unpack(ARGV, 4))
local tag, shards = ARGV[1], tonumber(ARGV[2])
local page = {}
for i = 1, #ids do
  local data = activity_hashes(tag, shards, ids[i])
  page[2 * i - 1] = ids[i]
  page[2 * i] = redis.call('HGET', data, ids[i]) or false
end
return page
""",
)

_HDEL_ALL = """
local function hdel_all(key, fields)
  for first = 1, #fields, 1000 do
    redis.call('HDEL', key, unpack(fields, first, math.min(first + 999, #fields)))
  end
end
"""

_TIMELINE = (
    _HDEL_ALL
    + _REFERENCES
    + """
-- refs: {tag, shards, ttl, counted (1/0)}: the activity storage the timelines reference.
local function let_go(timeline, versions, ids, refs)
  for first = 1, #ids, 1000 do
    local last = math.min(first + 999, #ids)
    redis.call('ZREM', timeline, unpack(ids, first, last))
    redis.call('HDEL', versions, unpack(ids, first, last))
  end
  if refs[4] == 1 then
    for _, id in ipairs(ids) do
      release(id)
    end
  end
end

-- Drop ids older than the cutoff (expired by the TTL; '' = none), then trim.
local function trim_timeline(timeline, versions, max_length, cutoff, refs)
  if cutoff ~= '' then
    local expired = redis.call('ZRANGEBYLEX', timeline, '-', '(' .. cutoff)
    if #expired > 0 then
      let_go(timeline, versions, expired, refs)
    end
  end
  if max_length >= 0 then
    local excess = redis.call('ZCARD', timeline) - max_length
    if excess > 0 then
      let_go(timeline, versions, redis.call('ZRANGE', timeline, 0, excess - 1), refs)
    end
  end
end

local function refs_of(at)
  return {ARGV[at], tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2]), tonumber(ARGV[at + 3])}
end
"""
)

ADD_TO_TIMELINES = Lua(
    "add_to_timelines",
    _TIMELINE
    + """
-- KEYS: (timeline, versions, removals) of one feed on a cluster; none on a single
-- server, where ARGV[8] names the feeds instead: their keys joined by '}' (a feed
-- key holds no brace). ARGV: max length (-1 = no trim), version, TTL cutoff id
-- ('' = none), the activity storage (tag, shards, ttl, counted), the feed keys
-- ('' with KEYS), then the ids. An id is added where its last applied version
-- (held, or removed: negative) is older than this one. Returns how many ids were
-- new in each timeline.
local max_length = tonumber(ARGV[1])
local version = tonumber(ARGV[2])
local cutoff = ARGV[3]
local refs = refs_of(4)
local counted = refs[4] == 1
local ids = {}
for i = 9, #ARGV do
  if cutoff == '' or ARGV[i] >= cutoff then
    ids[#ids + 1] = ARGV[i]
  end
end

-- removals: the key, or the feed key to name it from when it is needed (rarely).
local call = redis.call
local function add(timeline, versions, removals, feed)
  local new = 0
  for _, id in ipairs(ids) do
    local apply = call('HSETNX', versions, id, ARGV[2]) == 1
    if not apply then
      local seen = tonumber(call('HGET', versions, id))
      if math.abs(seen) < version then
        apply = true
        call('HSET', versions, id, ARGV[2])
        if seen < 0 then
          call('ZREM', removals or ('{' .. feed .. '}:tr'), id)
        end
      end
    end
    if apply and call('ZADD', timeline, 0, id) == 1 then
      new = new + 1
      if counted then
        hold(id)
      end
    end
  end
  if cutoff ~= '' or (max_length >= 0 and call('ZCARD', timeline) > max_length) then
    trim_timeline(timeline, versions, max_length, cutoff, refs)
  end
  return new
end

local added = {}
if #KEYS > 0 then
  for k = 1, #KEYS, 3 do
    added[#added + 1] = add(KEYS[k], KEYS[k + 1], KEYS[k + 2])
  end
else
  for feed in string.gmatch(ARGV[8], '[^}]+') do
    added[#added + 1] = add('{' .. feed .. '}:tl', '{' .. feed .. '}:tv', nil, feed)
  end
end
flush_refs(refs[1], refs[2], refs[3])
return added
""",
)

REMOVE_FROM_TIMELINES = Lua(
    "remove_from_timelines",
    _TIMELINE
    + """
-- KEYS: (timeline, versions, removals) of each feed. ARGV: version, how many
-- removals a feed remembers, the activity storage (tag, shards, ttl, counted),
-- then the ids. An id is removed (and the removal remembered) where its last
-- applied version is older than this one. Returns how many ids each timeline held.
local version = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local refs = refs_of(3)
local removed = {}
for k = 1, #KEYS, 3 do
  local timeline, versions, removals = KEYS[k], KEYS[k + 1], KEYS[k + 2]
  local count = 0
  for first = 7, #ARGV, 1000 do
    local last = math.min(first + 999, #ARGV)
    local known = redis.call('HMGET', versions, unpack(ARGV, first, last))
    for i = first, last do
      local id = ARGV[i]
      local seen = known[i - first + 1]
      if not seen or math.abs(tonumber(seen)) < version then
        if redis.call('ZREM', timeline, id) == 1 then
          count = count + 1
          if refs[4] == 1 then
            release(id)
          end
        end
        redis.call('HSET', versions, id, '-' .. ARGV[1])
        redis.call('ZADD', removals, ARGV[1], id)
      end
    end
  end
  local excess = redis.call('ZCARD', removals) - limit
  if excess > 0 then
    local forgotten = redis.call('ZRANGE', removals, 0, excess - 1)
    redis.call('ZREMRANGEBYRANK', removals, 0, excess - 1)
    hdel_all(versions, forgotten)
  end
  removed[#removed + 1] = count
end
flush_refs(refs[1], refs[2], refs[3])
return removed
""",
)

TRIM_TIMELINE = Lua(
    "trim_timeline",
    _TIMELINE
    + """
-- KEYS: timeline, versions. ARGV: length, TTL cutoff id ('' = none), the activity
-- storage (tag, shards, ttl, counted). Keeps the newest ids and their versions.
local refs = refs_of(3)
trim_timeline(KEYS[1], KEYS[2], tonumber(ARGV[1]), ARGV[2], refs)
flush_refs(refs[1], refs[2], refs[3])
return 1
""",
)

DELETE_TIMELINE = Lua(
    "delete_timeline",
    _TIMELINE
    + """
-- KEYS: timeline, versions, removals. ARGV: the activity storage (tag, shards,
-- ttl, counted). Lets go of every id, then removes the feed's keys.
local refs = refs_of(1)
if refs[4] == 1 then
  let_go(KEYS[1], KEYS[2], redis.call('ZRANGE', KEYS[1], 0, -1), refs)
  flush_refs(refs[1], refs[2], refs[3])
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
return 1
""",
)

_INDEX = """
-- An index entry is '<version> <id length> <aggregated id><actor>', or
-- '-<version>' for a removal.
local function holder(entry)
  if string.sub(entry, 1, 1) == '-' then
    return nil
  end
  local length, rest = string.match(entry, '^%d+ (%d+) (.*)$')
  return string.sub(rest, 1, tonumber(length))
end
"""

READ_GROUPS = Lua(
    "read_groups",
    _INDEX
    + """
-- KEYS: scores, groups, version, index.
-- ARGV: first rank, how many (-1 = all the rest), oldest score kept ('-inf': no TTL),
--       #group keys, group keys..., #activity ids, ids..., holding (1/0).
-- Returns {version, #groups, id, data, ..., entry or false per activity id}:
-- the window's groups (highest score first, none older than the TTL) whose group
-- key is listed (any key if none is), the index entries of the ids (false where
-- the holding group expired), and with holding also the groups holding them. A
-- group key is what follows the 18-digit time and ':'.
local first, count, oldest = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local wanted_keys = tonumber(ARGV[4])
local keys = {}
for i = 5, 4 + wanted_keys do
  keys[ARGV[i]] = true
end
local at = 5 + wanted_keys
local id_count = tonumber(ARGV[at])
local ids = {}
for i = 1, id_count do
  ids[i] = ARGV[at + i]
end
local holding = ARGV[at + id_count + 1] == '1'

local groups = {}
local chosen = {}
local function take(id)
  if chosen[id] then
    return
  end
  local data = redis.call('HGET', KEYS[2], id)
  if data then
    chosen[id] = true
    groups[#groups + 1] = id
    groups[#groups + 1] = data
  end
end
if count ~= 0 then
  local window
  if count > 0 then
    window = redis.call('ZREVRANGEBYSCORE', KEYS[1], '+inf', oldest, 'LIMIT', first, count)
  else
    window = redis.call('ZREVRANGEBYSCORE', KEYS[1], '+inf', oldest, 'LIMIT', first, -1)
  end
  for _, id in ipairs(window) do
    if wanted_keys == 0 or keys[string.sub(id, 20)] then
      take(id)
    end
  end
end
local entries = {}
if id_count > 0 then
  entries = redis.call('HMGET', KEYS[4], unpack(ids))
  for i = 1, id_count do
    if entries[i] and oldest ~= '-inf' then
      local id = holder(entries[i])
      if id then
        local score = redis.call('ZSCORE', KEYS[1], id)
        if not score or tonumber(score) < tonumber(oldest) then
          entries[i] = false
        end
      end
    end
  end
  if holding then
    for i = 1, id_count do
      if entries[i] then
        local id = holder(entries[i])
        if id then
          take(id)
        end
      end
    end
  end
end
local result = {redis.call('GET', KEYS[3]) or '0', #groups / 2}
for i = 1, #groups do
  result[#result + 1] = groups[i]
end
for i = 1, id_count do
  result[#result + 1] = entries[i] or false
end
return result
""",
)

READ_GROUP_PAGE = Lua(
    "read_group_page",
    """
-- KEYS: scores, groups. ARGV: the score and id the last page ended with ('+inf' and ''
-- for the first page), how many, the oldest score kept ('-inf': no TTL). Returns
-- {id, data, ...} ordered by (score, id), highest first, strictly after that
-- position. Equal scores come in reverse id order, so the ones at or above the id
-- were on earlier pages and are skipped.
local top, after, limit, oldest = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local page = {}
local offset = 0
while #page < 2 * limit do
  local batch = redis.call('ZREVRANGEBYSCORE', KEYS[1], top, oldest, 'WITHSCORES',
    'LIMIT', offset, limit + 16)
  if #batch == 0 then
    break
  end
  for i = 1, #batch, 2 do
    local id, score = batch[i], batch[i + 1]
    if after == '' or tonumber(score) < tonumber(top) or id < after then
      local data = redis.call('HGET', KEYS[2], id)
      if data and #page < 2 * limit then
        page[#page + 1] = id
        page[#page + 1] = data
      end
    end
  end
  offset = offset + #batch / 2
end
return page
""",
)

COMMIT_GROUPS = Lua(
    "commit_groups",
    _COUNTS_JSON
    + _HDEL_ALL
    + _INDEX
    + """
-- KEYS: scores, groups, version, unseen, unread, index, removals.
-- ARGV: expected version, max_length (-1 = keep all), markers (1/0), channel,
--       removals remembered, oldest score kept ('-inf': no TTL), #removals, ids...,
--       #upserts, (id, score, data)..., #unseen, ids..., #index entries,
--       (activity id, entry)...
-- Applies the write only if the version still holds; returns 1, or 0 if it lost.
-- Groups older than the TTL go too; index entries of the groups the write
-- removes, trims or expires go with them.
if (redis.call('GET', KEYS[3]) or '0') ~= ARGV[1] then
  return 0
end
local max_length = tonumber(ARGV[2])
local markers = ARGV[3] == '1'
local dropped = {}
local any_dropped = false

local function drop(id)
  redis.call('ZREM', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
  if markers then
    redis.call('SREM', KEYS[4], id)
    redis.call('SREM', KEYS[5], id)
  end
  dropped[id] = true
  any_dropped = true
end

if ARGV[6] ~= '-inf' then
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[6])) do
    drop(id)
  end
end
local i = 7
local n = tonumber(ARGV[i])
i = i + 1
for _ = 1, n do
  drop(ARGV[i])
  i = i + 1
end
n = tonumber(ARGV[i])
i = i + 1
for _ = 1, n do
  redis.call('ZADD', KEYS[1], ARGV[i + 1], ARGV[i])
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 2])
  dropped[ARGV[i]] = nil
  i = i + 3
end
n = tonumber(ARGV[i])
i = i + 1
for _ = 1, n do
  if markers then
    redis.call('SADD', KEYS[4], ARGV[i])
    redis.call('SADD', KEYS[5], ARGV[i])
  end
  i = i + 1
end
if max_length >= 0 then
  local excess = redis.call('ZCARD', KEYS[1]) - max_length
  if excess > 0 then
    for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, excess - 1)) do
      drop(id)
    end
  end
end
n = tonumber(ARGV[i])
i = i + 1
for _ = 1, n do
  local activity_id, entry = ARGV[i], ARGV[i + 1]
  redis.call('HSET', KEYS[6], activity_id, entry)
  if string.sub(entry, 1, 1) == '-' then
    redis.call('ZADD', KEYS[7], string.sub(entry, 2), activity_id)
  else
    redis.call('ZREM', KEYS[7], activity_id)
  end
  i = i + 2
end
if any_dropped then
  local stale = {}
  local all = redis.call('HGETALL', KEYS[6])
  for j = 1, #all, 2 do
    local id = holder(all[j + 1])
    if id and dropped[id] then
      stale[#stale + 1] = all[j]
    end
  end
  hdel_all(KEYS[6], stale)
end
local excess = redis.call('ZCARD', KEYS[7]) - tonumber(ARGV[5])
if excess > 0 then
  local forgotten = redis.call('ZRANGE', KEYS[7], 0, excess - 1)
  redis.call('ZREMRANGEBYRANK', KEYS[7], 0, excess - 1)
  hdel_all(KEYS[6], forgotten)
end
redis.call('INCR', KEYS[3])
redis.call('PERSIST', KEYS[3])
if markers then
  redis.call('PUBLISH', ARGV[4], counts_json(KEYS[4], KEYS[5]))
end
return 1
""",
)

MARKER_COUNTS = Lua(
    "marker_counts",
    """
-- KEYS: scores, unseen, unread. ARGV: the oldest score kept.
-- Returns {unseen, unread} among the groups the TTL keeps.
local function live(key)
  local n = 0
  for _, id in ipairs(redis.call('SMEMBERS', key)) do
    local score = redis.call('ZSCORE', KEYS[1], id)
    if score and tonumber(score) >= tonumber(ARGV[1]) then
      n = n + 1
    end
  end
  return n
end
return {live(KEYS[2]), live(KEYS[3])}
""",
)

MARK = Lua(
    "mark",
    _COUNTS_JSON
    + """
-- KEYS: unseen, unread, version. ARGV: seen (1/0), read (1/0), all (1/0), channel, ids...
-- Returns {unseen_count, unread_count}; publishes them if they changed.
local before_unseen = redis.call('SCARD', KEYS[1])
local before_unread = redis.call('SCARD', KEYS[2])
local function clear(key)
  if ARGV[3] == '1' then
    redis.call('DEL', key)
  else
    for i = 5, #ARGV do
      redis.call('SREM', key, ARGV[i])
    end
  end
end
if ARGV[1] == '1' then
  clear(KEYS[1])
end
if ARGV[2] == '1' then
  clear(KEYS[2])
end
local unseen = redis.call('SCARD', KEYS[1])
local unread = redis.call('SCARD', KEYS[2])
if unseen ~= before_unseen or unread ~= before_unread then
  redis.call('INCR', KEYS[3])
  redis.call('PUBLISH', ARGV[4], counts_json(KEYS[1], KEYS[2]))
end
return {unseen, unread}
""",
)

DELETE_GROUPS = Lua(
    "delete_groups",
    """
-- KEYS: scores, groups, version, unseen, unread, index, removals.
-- ARGV: channel, version ttl (seconds).
-- Removes the feed but moves its version on (kept for a while), so a writer that
-- read the feed before the delete can never commit on top of a newer feed.
local existed = redis.call('EXISTS', KEYS[1])
redis.call('DEL', KEYS[1], KEYS[2], KEYS[4], KEYS[5], KEYS[6], KEYS[7])
redis.call('INCR', KEYS[3])
redis.call('EXPIRE', KEYS[3], tonumber(ARGV[2]))
if existed == 1 then
  redis.call('PUBLISH', ARGV[1], '{"unseen_count":0,"unread_count":0}')
end
return existed
""",
)
