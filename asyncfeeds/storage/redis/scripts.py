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
-- An index entry (IndexEntry.encode) is '+<version> <created> <group length>
-- <group><actor>' (version and creation time in base 36), '<version> <id length>
-- <aggregated id><actor>', or '-<version>' for a removal.
local function holder(entry)
  local first = string.sub(entry, 1, 1)
  if first == '-' then
    return nil
  end
  if first == '+' then
    local created, length, rest = string.match(entry, '^%+%w+ (%w+) (%d+) (.*)$')
    return string.format('%018d', tonumber(created, 36)) .. ':'
      .. string.sub(rest, 1, tonumber(length))
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

_APPLY_GROUPS = (
    _COUNTS_JSON
    + _HDEL_ALL
    + _INDEX
    + """
-- Writes one feed's change on KEYS (scores, groups, version, unseen, unread, index,
-- removals): w = {max_length (-1 = keep all), markers, channel, removals remembered,
-- oldest score kept ('-inf': no TTL), removals = {ids}, upserts = {{id, score, data}},
-- unseen = {ids}, index = {{activity id, entry, false if no removal to forget}}}.
-- Groups older than the TTL go too; index entries of the groups the write removes,
-- trims or expires go with them.
local function apply(w)
  local dropped = {}
  local any_dropped = false
  local function drop(id)
    redis.call('ZREM', KEYS[1], id)
    redis.call('HDEL', KEYS[2], id)
    if w.markers then
      redis.call('SREM', KEYS[4], id)
      redis.call('SREM', KEYS[5], id)
    end
    dropped[id] = true
    any_dropped = true
  end
  if w.oldest ~= '-inf' then
    for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. w.oldest)) do
      drop(id)
    end
  end
  for _, id in ipairs(w.removals) do
    drop(id)
  end
  for _, upsert in ipairs(w.upserts) do
    redis.call('ZADD', KEYS[1], upsert[2], upsert[1])
    redis.call('HSET', KEYS[2], upsert[1], upsert[3])
    dropped[upsert[1]] = nil
  end
  if w.markers then
    for _, id in ipairs(w.unseen) do
      redis.call('SADD', KEYS[4], id)
      redis.call('SADD', KEYS[5], id)
    end
  end
  if w.max_length >= 0 then
    local excess = redis.call('ZCARD', KEYS[1]) - w.max_length
    if excess > 0 then
      for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, excess - 1)) do
        drop(id)
      end
    end
  end
  local remembered = false
  for _, pair in ipairs(w.index) do
    local activity_id, entry = pair[1], pair[2]
    redis.call('HSET', KEYS[6], activity_id, entry)
    if string.sub(entry, 1, 1) == '-' then
      redis.call('ZADD', KEYS[7], string.sub(entry, 2), activity_id)
      remembered = true
    elseif pair[3] ~= false then
      redis.call('ZREM', KEYS[7], activity_id)
    end
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
  local excess = remembered and redis.call('ZCARD', KEYS[7]) - w.remembered or 0
  if excess > 0 then
    local forgotten = redis.call('ZRANGE', KEYS[7], 0, excess - 1)
    redis.call('ZREMRANGEBYRANK', KEYS[7], 0, excess - 1)
    hdel_all(KEYS[6], forgotten)
  end
  redis.call('INCR', KEYS[3])
  redis.call('PERSIST', KEYS[3])
  if w.markers then
    redis.call('PUBLISH', w.channel, counts_json(KEYS[4], KEYS[5]))
  end
end
"""
)

COMMIT_GROUPS = Lua(
    "commit_groups",
    _APPLY_GROUPS
    + """
-- KEYS: scores, groups, version, unseen, unread, index, removals.
-- ARGV: expected version, max_length (-1 = keep all), markers (1/0), channel,
--       removals remembered, oldest score kept ('-inf': no TTL), #removals, ids...,
--       #upserts, (id, score, data)..., #unseen, ids..., #index entries,
--       (activity id, entry)...
-- Applies the write only if the version still holds; returns 1, or 0 if it lost.
if (redis.call('GET', KEYS[3]) or '0') ~= ARGV[1] then
  return 0
end
local w = {max_length = tonumber(ARGV[2]), markers = ARGV[3] == '1', channel = ARGV[4],
  remembered = tonumber(ARGV[5]), oldest = ARGV[6], removals = {}, upserts = {},
  unseen = {}, index = {}}
local i = 7
local n = tonumber(ARGV[i])
i = i + 1
for _ = 1, n do
  w.removals[#w.removals + 1] = ARGV[i]
  i = i + 1
end
n = tonumber(ARGV[i])
i = i + 1
for _ = 1, n do
  w.upserts[#w.upserts + 1] = {ARGV[i], ARGV[i + 1], ARGV[i + 2]}
  i = i + 3
end
n = tonumber(ARGV[i])
i = i + 1
for _ = 1, n do
  w.unseen[#w.unseen + 1] = ARGV[i]
  i = i + 1
end
n = tonumber(ARGV[i])
i = i + 1
for _ = 1, n do
  w.index[#w.index + 1] = {ARGV[i], ARGV[i + 1]}
  i = i + 2
end
apply(w)
return 1
""",
)

ADD_TO_GROUPS = Lua(
    "add_to_groups",
    _APPLY_GROUPS
    + """
-- KEYS: scores, groups, version, unseen, unread, index, removals.
-- ARGV: the settings, space separated: version, max_length (-1 = keep all),
--       markers (1/0), removals remembered, oldest score kept ('-inf': no TTL),
--       merge window (-1 = all), activities kept per group, reply with data
--       (1/0), the version in base 36; then the channel, then per activity, in
--       id order: (id, 18-digit time, group key, actor, encoded entry).
-- Merges the activities into their groups as BaseAggregator.merge and
-- AggregatedActivity.append do, then writes like COMMIT_GROUPS, in one step.
-- Returns {#changed, data...} (data only if asked), or {-1} without writing if a
-- group it needs is not in the compact format (the caller takes the slow path).
local decimal, max_length, markers, remembered, oldest, window_size, cap, with_data,
  version36 = string.match(ARGV[1], '^(%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+)$')
local version = tonumber(decimal)
window_size, cap = tonumber(window_size), tonumber(cap)

-- A group: its header fields and body (the kept entries '<id>\\31<data>\\31', in id
-- order, as stored).
local function parse(data)
  local created, updated, seen, read, minimized, kept, tail, size, at = string.match(data,
    '^~(%d*)|(%d*)|(%d*)|(%d*)|(%d+)|(%d+)|(%d+)|(%d+)|()')
  if not created then
    return nil
  end
  size = tonumber(size)
  return {created = created, updated = updated, seen = seen, read = read,
    minimized = tonumber(minimized), kept = tonumber(kept), tail = tonumber(tail),
    group = string.sub(data, at, at + size - 1), body = string.sub(data, at + size)}
end

local function header(g)
  return '~' .. g.created .. '|' .. g.updated .. '|' .. g.seen .. '|' .. g.read .. '|'
    .. tostring(g.minimized) .. '|' .. g.kept .. '|' .. g.tail .. '|' .. #g.group .. '|'
    .. g.group
end

-- Where each entry of a body starts, and its id's first and last position.
local function entries(body)
  local starts, first, last = {}, {}, {}
  local at = 1
  while at <= #body do
    local sep = string.find(body, '\\31', at, true)
    starts[#starts + 1] = at
    first[#first + 1] = at
    last[#last + 1] = sep - 1
    at = string.find(body, '\\31', sep + 1, true) + 1
  end
  return starts, first, last
end

-- AggregatedActivity.append: the entry goes in id order, the oldest beyond the cap
-- are counted as minimized. Returns false if the group holds the id already.
local function id_at(body, at)
  return string.sub(body, at, string.find(body, '\\31', at, true) - 1)
end

-- The common case: the entry is the group's newest, so it goes at the end of the body.
local function append_newest(g, item)
  local body = g.body .. item
  local overflow = g.kept + 1 - cap
  if overflow > 0 then
    local at = 1
    for _ = 1, overflow do
      at = string.find(body, '\\31', string.find(body, '\\31', at, true) + 1, true) + 1
    end
    body = string.sub(body, at)
    g.minimized = g.minimized + overflow
  end
  g.body = body
  g.kept = g.kept + 1 - math.max(overflow, 0)
  g.tail = body == '' and 0 or #item
end

local function append_anywhere(g, id, item)
  local body = g.body
  local starts, first, last = entries(body)
  local n = #starts
  local at = n + 1
  while at > 1 and string.sub(body, first[at - 1], last[at - 1]) > id do
    at = at - 1
  end
  starts[n + 1] = #body + 1
  body = string.sub(body, 1, starts[at] - 1) .. item .. string.sub(body, starts[at])
  local overflow = n + 1 - cap
  if overflow > 0 then
    -- the first entries are unchanged unless the item went in before them
    local cut = 0
    for j = 1, overflow do
      if j < at then
        cut = cut + (starts[j + 1] - starts[j])
      else
        cut = cut + #item
        for k = at, overflow - 1 do
          cut = cut + (starts[k + 1] - starts[k])
        end
        break
      end
    end
    body = string.sub(body, cut + 1)
    g.minimized = g.minimized + overflow
  end
  g.body = body
  starts = entries(body)
  g.kept = #starts
  g.tail = g.kept > 0 and #body - starts[g.kept] + 1 or 0
end

local function append(g, id, time, item)
  if g.kept > 0 and string.find(g.body, id, 1, true) then
    local _, first, last = entries(g.body)
    for j = 1, #first do
      if string.sub(g.body, first[j], last[j]) == id then
        return false
      end
    end
  end
  if g.kept == 0 or id_at(g.body, #g.body - g.tail + 1) < id then
    append_newest(g, item)
  else
    append_anywhere(g, id, item)
  end
  if g.created == '' then
    g.created = time
  end
  if g.updated == '' or time > g.updated then
    g.updated = time
  end
  return true
end

local window = nil
local function newest_in_window(key)
  if window == nil then
    window = {}
    if window_size ~= 0 then
      window = redis.call('ZREVRANGEBYSCORE', KEYS[1], '+inf', oldest, 'LIMIT', 0,
        window_size)
    end
  end
  local size = 19 + #key
  for _, id in ipairs(window) do
    if #id == size and string.find(id, key, 20, true) == 20 then
      return id
    end
  end
  return nil
end

local function live(entry)
  if oldest == '-inf' then
    return true
  end
  local id = holder(entry)
  if not id then
    return true
  end
  local score = redis.call('ZSCORE', KEYS[1], id)
  return score and tonumber(score) >= tonumber(oldest)
end

-- Creation times from 2^53 µs on (year 2255) are not exact as Lua numbers.
local EXACT = 9007199254740992

local function base36(n)
  local out = ''
  repeat
    local digit = n % 36
    out = string.sub('0123456789abcdefghijklmnopqrstuvwxyz', digit + 1, digit + 1) .. out
    n = (n - digit) / 36
  until n == 0
  return out
end

local function version_of(entry)
  if string.sub(entry, 1, 1) == '+' then
    return tonumber(string.match(entry, '^%+(%w+)'), 36)
  end
  return tonumber(string.match(entry, '^-?(%d+)'))
end

local touched, created, changed, fresh, index = {}, {}, {}, {}, {}
for i = 3, #ARGV, 5 do
  local id, time, key, actor, item = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  local entry = redis.call('HGET', KEYS[6], id)
  if entry and not live(entry) then
    entry = false
  end
  local known = entry and version_of(entry)
  if known and known >= version then
    -- this call, or a later one, was applied already
  elseif entry and string.sub(entry, 1, 1) == '+' then
    index[#index + 1] = {id, '+' .. version36 .. string.match(entry, '^%+%w+( .*)$'), false}
  elseif entry and string.sub(entry, 1, 1) ~= '-' then
    index[#index + 1] = {id, decimal .. string.match(entry, '^%d+( .*)$'), false}
  else
    local g = touched[key]
    local existing_new = false
    if g == nil then
      local existing = newest_in_window(key)
      if existing then
        g = parse(redis.call('HGET', KEYS[2], existing))
        if g == nil then
          return {-1}
        end
      else
        g = {created = '', updated = '', seen = '', read = '', minimized = 0, kept = 0,
          tail = 0, group = key, body = ''}
        existing_new = true
      end
    end
    if append(g, id, time, item) and touched[key] == nil then
      touched[key] = g
      if existing_new then
        created[#created + 1] = key
      else
        changed[#changed + 1] = key
      end
    end
    fresh[#fresh + 1] = {id, key, actor, entry ~= nil and entry ~= false}
  end
end

local upserts, unseen, reply = {}, {}, {0}
for _, key in ipairs(changed) do
  created[#created + 1] = key
end
for _, key in ipairs(created) do
  local g = touched[key]
  local aggregated_id = g.created .. ':' .. key
  local data = header(g) .. g.body
  upserts[#upserts + 1] = {aggregated_id, g.updated, data}
  unseen[#unseen + 1] = aggregated_id
  if with_data == '1' then
    reply[#reply + 1] = data
  end
end
reply[1] = #upserts
for _, item in ipairs(fresh) do
  local g = touched[item[2]]
  if g then
    local entry
    if tonumber(g.created) < EXACT then
      entry = '+' .. version36 .. ' ' .. base36(tonumber(g.created)) .. ' ' .. #item[2] .. ' '
        .. item[2] .. item[3]
    else
      local aggregated_id = g.created .. ':' .. item[2]
      entry = decimal .. ' ' .. #aggregated_id .. ' ' .. aggregated_id .. item[3]
    end
    index[#index + 1] = {item[1], entry, item[4]}
  end
end
if #upserts == 0 and #index == 0 then
  return reply
end
apply({max_length = tonumber(max_length), markers = markers == '1', channel = ARGV[2],
  remembered = tonumber(remembered), oldest = oldest, removals = {}, upserts = upserts,
  unseen = unseen, index = index})
return reply
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
