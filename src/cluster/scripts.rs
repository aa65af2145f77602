//! The Lua scripts the worker runs in Redis: each check-and-change that must be atomic across
//! nodes (a nick claim, the refresh of a node's nicks, keeping something for a user who is away,
//! the cluster's epoch, a nick's release).

/// Claims a nick: fails if another node holds it (this node's own entry is its chat's to
/// judge: it may be a claim whose answer was lost and is tried again), or if it is registered
/// and its owner did not prove it is theirs; a rename also fails onto a saved session. KEYS: the nick, its session,
/// the accounts, the private messages kept for it; ARGV: node, TTL, rename, owner, the nick's
/// key. A first login takes the kept messages with the nick (so one node delivers them).
/// Returns `{status, saved session JSON or false, kept messages (JSON)}`.
pub const CLAIM_SCRIPT: &str = r"
local owner = redis.call('GET', KEYS[1])
if owner and owner ~= ARGV[1] then return {'inuse', false, {}} end
if ARGV[4] == '0' and redis.call('HEXISTS', KEYS[3], ARGV[5]) == 1 then return {'registered', false, {}} end
local session = redis.call('GET', KEYS[2])
if ARGV[3] == '1' and session then return {'saved', false, {}} end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
local kept = {}
if ARGV[3] == '0' then
  kept = redis.call('LRANGE', KEYS[4], 0, -1)
  redis.call('DEL', KEYS[4])
end
return {'granted', session, kept}
";

/// Refreshes the TTL of nicks this node holds, and takes back the ones that expired (after a
/// Redis restart, say) unless another node holds them now; also keeps their saved sessions
/// from expiring while their users are online. KEYS are pairs: nick key, session key.
/// Returns the nicks held elsewhere.
pub const REFRESH_SCRIPT: &str = r"
local lost = {}
for i = 1, #KEYS, 2 do
  local key = KEYS[i]
  local owner = redis.call('GET', key)
  if owner == false or owner == ARGV[1] then
    redis.call('SET', key, ARGV[1], 'EX', ARGV[2])
    redis.call('EXPIRE', KEYS[i + 1], ARGV[3])
  else
    table.insert(lost, key)
  end
end
return lost
";

/// Keeps something for a user who is away: their session (`set`) or a private message
/// (`push`, at most ARGV[5] of them). A registered nick's is kept until its owner returns,
/// anyone else's for the session TTL, as the nodes keep theirs. KEYS: the key, the accounts;
/// ARGV: set or push, the value, the TTL in seconds, the nick's key, the list's bound.
pub const KEEP_SCRIPT: &str = r"
if ARGV[1] == 'set' then
  redis.call('SET', KEYS[1], ARGV[2])
else
  redis.call('RPUSH', KEYS[1], ARGV[2])
  redis.call('LTRIM', KEYS[1], -tonumber(ARGV[5]), -1)
end
if redis.call('HEXISTS', KEYS[2], ARGV[4]) == 1 then
  redis.call('PERSIST', KEYS[1])
else
  redis.call('EXPIRE', KEYS[1], ARGV[3])
end
return 1
";

/// Sets the cluster's epoch if it has none, and returns it.
pub const EPOCH_SCRIPT: &str = r"
redis.call('SET', KEYS[1], ARGV[1], 'NX')
return redis.call('GET', KEYS[1])
";
/// Deletes a nick's entry if this node holds it.
pub const RELEASE_SCRIPT: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";
