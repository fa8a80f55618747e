"""Lua scripts for the atomic read-modify-write steps of aggregated and notification feeds.

Every script touches only keys of one feed (one hash tag), passed in ``KEYS``,
so it runs unchanged on Redis Cluster. Group keys, in order:
``scores`` (zset id -> score), ``groups`` (hash id -> data), ``version``,
``unseen`` and ``unread`` (sets of ids).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Lua:
    """A named Lua script; ``RedisServer`` registers it per client and runs it by SHA."""

    name: str
    source: str


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

READ_PAGE = Lua(
    "read_page",
    """
-- KEYS: the timeline (a single server only: the activity hashes span slots).
-- ARGV: the activity hash name before and after the shard number, then the
-- range command and its arguments. Returns ids and data, alternating; the shard
-- is the id's last three hex digits modulo 1024, as keys.activity_shard computes.
local ids = redis.call(ARGV[3], KEYS[1], unpack(ARGV, 4))
local page = {}
for i = 1, #ids do
  local shard = (tonumber(string.sub(ids[i], -3), 16) or 0) % 1024
  page[2 * i - 1] = ids[i]
  page[2 * i] = redis.call('HGET', ARGV[1] .. shard .. ARGV[2], ids[i]) or false
end
return page
""",
)

ADD_TO_TIMELINES = Lua(
    "add_to_timelines",
    """
-- KEYS: timelines (a single server only: they span slots).
-- ARGV: max length (-1 = no trim), then the ids to add to every timeline.
-- Returns how many ids were new in each timeline. One call writes a fanout chunk.
local max_length = tonumber(ARGV[1])
local added = {}
for k = 1, #KEYS do
  local new = 0
  for first = 2, #ARGV, 1000 do
    local args = {}
    for i = first, math.min(first + 999, #ARGV) do
      args[#args + 1] = 0
      args[#args + 1] = ARGV[i]
    end
    new = new + redis.call('ZADD', KEYS[k], unpack(args))
  end
  if max_length >= 0 then
    redis.call('ZREMRANGEBYRANK', KEYS[k], 0, -(max_length + 1))
  end
  added[k] = new
end
return added
""",
)

READ_GROUPS = Lua(
    "read_groups",
    """
-- KEYS: scores, groups, version. ARGV: first rank, how many (-1 = all the rest).
-- Returns {version, id, data, id, data, ...}, highest score first.
local result = {redis.call('GET', KEYS[3]) or '0'}
local first, count = tonumber(ARGV[1]), tonumber(ARGV[2])
if count == 0 then
  return result
end
local last = -1
if count > 0 then
  last = first + count - 1
end
for _, id in ipairs(redis.call('ZREVRANGE', KEYS[1], first, last)) do
  local data = redis.call('HGET', KEYS[2], id)
  if data then
    result[#result + 1] = id
    result[#result + 1] = data
  end
end
return result
""",
)

COMMIT_GROUPS = Lua(
    "commit_groups",
    _COUNTS_JSON
    + """
-- KEYS: scores, groups, version, unseen, unread.
-- ARGV: expected version, max_length (-1 = keep all), markers (1/0), channel,
--       #removals, ids..., #upserts, (id, score, data)..., #unseen, ids...
-- Applies the write only if the version still holds; returns 1, or 0 if it lost.
if (redis.call('GET', KEYS[3]) or '0') ~= ARGV[1] then
  return 0
end
local max_length = tonumber(ARGV[2])
local markers = ARGV[3] == '1'

local function drop(id)
  redis.call('ZREM', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
  if markers then
    redis.call('SREM', KEYS[4], id)
    redis.call('SREM', KEYS[5], id)
  end
end

local i = 5
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
  i = i + 3
end
n = tonumber(ARGV[i])
i = i + 1
if markers then
  for _ = 1, n do
    redis.call('SADD', KEYS[4], ARGV[i])
    redis.call('SADD', KEYS[5], ARGV[i])
    i = i + 1
  end
end
if max_length >= 0 then
  local excess = redis.call('ZCARD', KEYS[1]) - max_length
  if excess > 0 then
    for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, excess - 1)) do
      drop(id)
    end
  end
end
redis.call('INCR', KEYS[3])
redis.call('PERSIST', KEYS[3])
if markers then
  redis.call('PUBLISH', ARGV[4], counts_json(KEYS[4], KEYS[5]))
end
return 1
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
-- KEYS: scores, groups, version, unseen, unread. ARGV: channel, version ttl (seconds).
-- Removes the feed but moves its version on (kept for a while), so a writer that
-- read the feed before the delete can never commit on top of a newer feed.
local existed = redis.call('EXISTS', KEYS[1])
redis.call('DEL', KEYS[1], KEYS[2], KEYS[4], KEYS[5])
redis.call('INCR', KEYS[3])
redis.call('EXPIRE', KEYS[3], tonumber(ARGV[2]))
if existed == 1 then
  redis.call('PUBLISH', ARGV[1], '{"unseen_count":0,"unread_count":0}')
end
return existed
""",
)
