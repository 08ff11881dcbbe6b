-- The waiting room: buyer admission at the edge (nginx, lua-nginx-module).
--
-- At most `buyers` buyers are active in the shop through this nginx at once; a buyer
-- beyond that gets a ticket (a place in line, first come first served) and a page
-- nginx answers itself, refreshed every `refresh` seconds, until a place is free.
-- No pretix process is spent on a waiting buyer: the cluster is CPU-bound at a rush,
-- so every request kept away from gunicorn is capacity for the admitted buyers.
--
-- Cookies (signed with the cluster's key, so no buyer can forge admission or a place):
--   pc_admit = <id>.<expires>.<sig>       admitted until <expires> (renewed while active),
--                                         valid at every entry node
--   pc_queue = <generation>.<ticket>.<sig>  a place in this nginx's line
-- State, in the lua_shared_dict shared by this nginx's workers:
--   slot:<i>    (i = 1..buyers) the id of the active buyer holding place i, expiring
--               active_timeout after their last request
--   buyer:<id>  the place <id> holds
--   next        the last ticket handed out; head: the first ticket possibly still waiting
--   seen:<t>    ticket t's holder asked within the last few refreshes (alive)
-- An admitted buyer is never sent back: when no place is free (they were idle long
-- enough to lose theirs) they pass anyway. Each operation on the dict is atomic, the
-- sequences are not: two workers may both see a place free, but `add` lets only one
-- take it, so the count of places is never exceeded by new admissions.

local M = {}

local ADMIT_COOKIE = "pc_admit"
local QUEUE_COOKIE = "pc_queue"
-- An admission cookie is renewed at most this often (s): a Set-Cookie per minute, not
-- per request.
local RENEW_EVERY = 60
-- A waiting buyer who missed this many refreshes has left: the line moves past them.
local MISSED_REFRESHES = 4
-- At most this many tickets are skipped per request (bounded latency); the rest next time.
local MAX_SKIP = 1000
-- Buyers near the front of the line wait at the door: nginx holds their request (up to
-- `refresh` s), checks this often (s) for a free place and lets it through to pretix the
-- moment there is one. Without this a freed place stayed empty until the next buyer's
-- page reloaded, up to `refresh` s, every time (the shop sold less than it could).
local DOOR_CHECK_S = 0.1
-- ... and when no place freed meanwhile, their page comes back after this (s), not after
-- `refresh`: they are soon at the door again.
local NEAR_FRONT_RETRY_S = 1

local conf
local dict

local function read_file(path)
  local f = assert(io.open(path, "rb"))
  local data = f:read("*a")
  f:close()
  return data
end

local function random_hex(bytes)
  local f = assert(io.open("/dev/urandom", "rb"))
  local raw = f:read(bytes)
  f:close()
  return (raw:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

-- Called once in nginx's master (init_by_lua): settings and files.
function M.init(settings)
  conf = settings
  conf.key = read_file(settings.key_file):gsub("%s+$", "")
  conf.page = read_file(settings.page_file)
  conf.seen_ttl = settings.refresh * MISSED_REFRESHES
  dict = ngx.shared[settings.dict]
  -- A new generation per start: tickets of an earlier nginx (or another node) mean
  -- nothing to this one's line. `add` keeps the generation over a reload (HUP).
  dict:add("generation", random_hex(8))
  dict:add("next", 0)
  dict:add("head", 1)
end

-- Called in every worker (init_worker_by_lua): ids must differ between workers.
function M.init_worker()
  math.randomseed(tonumber(random_hex(6), 16) + ngx.worker.pid())
end

local function sign(payload)
  return ngx.encode_base64(ngx.hmac_sha1(conf.key, payload), true)
end

-- The payload of a signed "<payload>.<sig>" value, or nil when the signature is wrong.
local function verified(value)
  if not value then
    return nil
  end
  local payload, sig = value:match("^(.+)%.([^.]+)$")
  if not payload then
    return nil
  end
  -- Compare HMACs of both, not the signatures: equal-time for a guessing client.
  if ngx.hmac_sha1(conf.key, sig) ~= ngx.hmac_sha1(conf.key, sign(payload)) then
    return nil
  end
  return payload
end

local function cookie(name, value, max_age)
  local parts = { name .. "=" .. value, "Path=/", "HttpOnly", "SameSite=Lax" }
  if conf.secure then
    parts[#parts + 1] = "Secure"
  end
  if max_age then
    parts[#parts + 1] = "Max-Age=" .. max_age
  end
  return table.concat(parts, "; ")
end

local function set_cookies(cookies)
  if #cookies > 0 then
    ngx.header["Set-Cookie"] = cookies
  end
end

local function admission_cookie(id, now)
  local payload = id .. "." .. (now + conf.admitted_for)
  return cookie(ADMIT_COOKIE, payload .. "." .. sign(payload), conf.admitted_for)
end

-- (id, expires) of a valid admission cookie, or nil.
local function admission(now)
  local payload = verified(ngx.var["cookie_" .. ADMIT_COOKIE])
  if not payload then
    return nil
  end
  local id, expires = payload:match("^(%x+)%.(%d+)$")
  expires = tonumber(expires)
  if not id or expires <= now then
    return nil
  end
  return id, expires
end

-- The ticket of a valid queue cookie of this nginx's current line, or nil.
local function ticket_of_cookie()
  local payload = verified(ngx.var["cookie_" .. QUEUE_COOKIE])
  if not payload then
    return nil
  end
  local generation, ticket = payload:match("^(%x+)%.(%d+)$")
  if generation ~= dict:get("generation") then
    return nil
  end
  return tonumber(ticket)
end

local function queue_cookie(ticket)
  local payload = dict:get("generation") .. "." .. ticket
  return cookie(QUEUE_COOKIE, payload .. "." .. sign(payload))
end

-- Takes a free place for `id`; false when all are held.
local function take_place(id)
  for i = 1, conf.buyers do
    -- add fails on a held place and succeeds on a free or expired one: atomic.
    if dict:add("slot:" .. i, id, conf.active_timeout) then
      dict:set("buyer:" .. id, i, conf.active_timeout)
      return true
    end
  end
  return false
end

-- The admitted buyer asked again: keep (or take again) their place.
local function keep_active(id)
  local i = dict:get("buyer:" .. id)
  if i and dict:get("slot:" .. i) == id then
    dict:set("slot:" .. i, id, conf.active_timeout)
    dict:set("buyer:" .. id, i, conf.active_timeout)
  else
    take_place(id)
  end
end

local function free_places()
  local free = 0
  for i = 1, conf.buyers do
    if dict:get("slot:" .. i) == nil then
      free = free + 1
    end
  end
  return free
end

-- Moves the head of the line past tickets nobody waits on any more (admitted, or
-- their holder left), never past `ticket`; one worker at a time.
local function advance_head(ticket)
  if not dict:add("lock:head", true, 1) then
    return dict:get("head")
  end
  local head = dict:get("head")
  local skipped = 0
  while head < ticket and skipped < MAX_SKIP and not dict:get("seen:" .. head) do
    head = head + 1
    skipped = skipped + 1
  end
  dict:set("head", head)
  dict:delete("lock:head")
  return head
end

-- Admits the holder of `ticket` if a place is free; `queued`: they have a queue cookie
-- (used up now).
local function admit(ticket, queued, now)
  local id = string.format("%08x%08x", math.random(0, 0x7fffffff), math.random(0, 0x7fffffff))
  if not take_place(id) then
    return false
  end
  dict:delete("seen:" .. ticket)
  dict:incr("admitted", 1, 0)
  local cookies = { admission_cookie(id, now) }
  if queued then
    cookies[2] = cookie(QUEUE_COOKIE, "", 0)
  end
  set_cookies(cookies)
  return true
end

local function hold(position, retry_after, cookies)
  set_cookies(cookies)
  ngx.status = ngx.HTTP_SERVICE_UNAVAILABLE
  ngx.header["Content-Type"] = "text/html; charset=utf-8"
  ngx.header["Retry-After"] = retry_after
  ngx.header["Cache-Control"] = "no-store"
  ngx.header[conf.position_header] = position
  local page = conf.page:gsub(conf.marker, tostring(position))
  page = page:gsub(conf.refresh_marker, tostring(retry_after))
  ngx.print(page)
  -- HTTP_OK ends the request here with the status set above (ngx.OK would go on to
  -- proxy it to pretix).
  return ngx.exit(ngx.HTTP_OK)
end

local function contains_any(uri, parts)
  for _, part in ipairs(parts) do
    if uri:find(part, 1, true) then
      return true
    end
  end
  return false
end

-- Only an event's pages (/<organizer>/<event>/...), where the purchase runs, are gated;
-- of those, not the parts a buyer does not queue for (a payment provider's webhook, the
-- pages of a placed order). Everything else (/api/, /control/, the index) always passes.
local function gated(uri)
  if not uri:find("^/[^/]+/[^/]+/") then
    return false
  end
  for _, prefix in ipairs(conf.exempt_prefixes) do
    if uri:sub(1, #prefix) == prefix then
      return false
    end
  end
  return not contains_any(uri, conf.exempt_parts) and not contains_any(uri, conf.done_parts)
end

-- The buyer reached their placed order: their place goes to the next in line at once,
-- not after active_timeout (they stay admitted, e.g. to buy again).
local function release_place(id)
  local i = dict:get("buyer:" .. id)
  if i and dict:get("slot:" .. i) == id then
    dict:delete("slot:" .. i)
  end
  dict:delete("buyer:" .. id)
end

-- How many tickets are before `ticket` in line (an upper bound: some of them may have
-- left since); it stays alive meanwhile.
local function buyers_ahead(ticket)
  -- Back after the line had moved past them (they missed refreshes): at the front.
  local late = ticket < dict:get("head")
  dict:set("seen:" .. ticket, true, conf.seen_ttl)
  return late and 0 or ticket - advance_head(ticket)
end

-- access_by_lua: let the request through to pretix, or answer the waiting page.
function M.access()
  local uri = ngx.var.uri
  local now = ngx.time()
  if contains_any(uri, conf.done_parts) then
    local id = admission(now)
    if id then
      release_place(id)
    end
  end
  if not gated(uri) then
    return
  end
  local id, expires = admission(now)
  if id then
    keep_active(id)
    if expires - now < conf.admitted_for - RENEW_EVERY then
      set_cookies({ admission_cookie(id, now) })
    end
    return
  end
  local ticket = ticket_of_cookie()
  local queued = ticket ~= nil
  if not queued then
    ticket = dict:incr("next", 1, 0)
  end
  local ahead = buyers_ahead(ticket)
  local cookies = queued and {} or { queue_cookie(ticket) }
  -- Further back than there are places: no place can be theirs yet (and no scan of
  -- the places for them, however long the line).
  if ahead >= conf.buyers then
    return hold(ahead + 1, conf.refresh, cookies)
  end
  if ahead < free_places() and admit(ticket, queued, now) then
    return
  end
  -- A buyer who closes the page while held at the door must not be admitted.
  ngx.on_abort(function()
    return ngx.exit(499)
  end)
  local started = ngx.now()
  while ngx.now() - started < conf.refresh do
    ngx.sleep(DOOR_CHECK_S)
    ahead = buyers_ahead(ticket)
    if ahead < free_places() and admit(ticket, queued, ngx.time()) then
      -- The load test counts this as the wait in line, not as pretix's time.
      ngx.header[conf.waited_header] = string.format("%.3f", ngx.now() - started)
      return
    end
  end
  return hold(ahead + 1, NEAR_FRONT_RETRY_S, cookies)
end

-- content_by_lua of the status location: this nginx's room as JSON (numbers only).
function M.report()
  local head, last = dict:get("head"), dict:get("next")
  local waiting = 0
  for t = head, last do
    if dict:get("seen:" .. t) then
      waiting = waiting + 1
    end
  end
  ngx.header["Content-Type"] = "application/json"
  ngx.header["Cache-Control"] = "no-store"
  ngx.print(string.format(
    '{"places": %d, "active": %d, "waiting": %d, "tickets": %d, "admitted": %d}',
    conf.buyers, conf.buyers - free_places(), waiting, last, dict:get("admitted") or 0
  ))
end

return M
