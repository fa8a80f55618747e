"""A read-time merge in one round trip: a pushed timeline plus the pulled authors' own.

On a single server one script call finds which followed authors are pulled, reads
the newest ``limit + 1`` ids of the reader's timeline and of each pulled author's
timeline, merges them by id, and returns the newest ``limit`` with their data. A
cluster cannot run it (the keys span slots): there the manager merges from
``Feed.newest_rows`` instead.
"""

from __future__ import annotations

from collections.abc import Sequence

from ...keys import KeyFormat
from ..base import expiry_cutoff
from .activities import RedisActivityStorage
from .connection import RedisServer
from .keys import pulled_key, timeline_key
from .scripts import ACTIVITY_HASHES, Lua

MERGE_PAGE = Lua(
    "merge_page",
    ACTIVITY_HASHES
    + """
-- KEYS[1]: the reader's timeline; KEYS[2]: the set of pulled authors (a single server
-- only: the authors' timelines and the activity hashes span slots).
-- ARGV: [1] followed authors (encoded ids, never holding ',') joined by ','; [2], [3]
-- an author's timeline key before and after the encoded id; [4] the page size;
-- [5], [6] ZREVRANGEBYLEX max and min; [7] the activity tag; [8] the shard count.
-- Returns: how many pulled authors were read, whether more rows follow (0/1), then
-- ids and data alternating, newest first.
local limit = tonumber(ARGV[4])
local lists = {}
local function take(key)
  local found = redis.call('ZREVRANGEBYLEX', key, ARGV[5], ARGV[6], 'LIMIT', 0, limit + 1)
  if #found > 0 then
    lists[#lists + 1] = found
  end
end
take(KEYS[1])
local following, count = {}, 0
for author in string.gmatch(ARGV[1], '[^,]+') do
  following[author] = true
  count = count + 1
end
local pulled = 0
if redis.call('SCARD', KEYS[2]) <= count then  -- the smaller side is walked
  for _, author in ipairs(redis.call('SMEMBERS', KEYS[2])) do
    if following[author] then
      pulled = pulled + 1
      take(ARGV[2] .. author .. ARGV[3])
    end
  end
else
  for author in pairs(following) do
    if redis.call('SISMEMBER', KEYS[2], author) == 1 then
      pulled = pulled + 1
      take(ARGV[2] .. author .. ARGV[3])
    end
  end
end
-- Merge the newest-first lists: the newest head each time, skipping an id seen before.
local heads, ids, last = {}, {}, nil
for j = 1, #lists do
  heads[j] = 1
end
while #ids <= limit do
  local best = nil
  for j = 1, #lists do
    local candidate = lists[j][heads[j]]
    if candidate ~= nil and (best == nil or candidate > lists[best][heads[best]]) then
      best = j
    end
  end
  if best == nil then
    break
  end
  local id = lists[best][heads[best]]
  heads[best] = heads[best] + 1
  if id ~= last then  -- equal ids come out one after another
    ids[#ids + 1] = id
    last = id
  end
end
local shards = tonumber(ARGV[8])
local page = {pulled, #ids > limit and 1 or 0}
for i = 1, math.min(#ids, limit) do
  local data = activity_hashes(ARGV[7], shards, ids[i])
  page[#page + 1] = ids[i]
  page[#page + 1] = redis.call('HGET', data, ids[i]) or false
end
return page
""",
)


async def merge_page(
    server: RedisServer,
    feed_key: str,
    pulled_scope: str,
    author_format: KeyFormat,
    authors: Sequence[str],
    limit: int,
    before: str | None,
    activity_storage: RedisActivityStorage,
) -> tuple[list[tuple[str, bytes | None]], bool]:
    """The newest ``limit`` rows (ids and data) below ``before`` of the merge, and whether
    more follow; ``authors`` are encoded user ids (the script keeps the pulled ones)."""
    opening, closing = timeline_key("\x00").split("\x00")  # around the feed key
    tag, shards, _ = activity_storage.script_args()
    cutoff = expiry_cutoff(activity_storage.ttl)
    high = "+" if before is None else "(" + before
    low = "-" if cutoff is None else "[" + cutoff
    script = server.evalsha(
        MERGE_PAGE,
        [timeline_key(feed_key), pulled_key(pulled_scope)],
        [
            ",".join(authors),
            opening + author_format.prefix,
            author_format.suffix + closing,
            limit,
            high,
            low,
            tag,
            shards,
        ],
    )
    (reply,) = await server.run([script])
    rows = [(reply[i].decode(), reply[i + 1] or None) for i in range(2, len(reply), 2)]
    return rows, bool(reply[1])
