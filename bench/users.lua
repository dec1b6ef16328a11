-- wrk script: every request carries one of USERS distinct x-user values (default 1000),
-- cycling, so each user comes back many times during a run.
local users = tonumber(os.getenv("USERS") or "1000")
local counter = 0

function setup(thread)
  thread:set("offset", math.random(0, users - 1))
end

function request()
  counter = counter + 1
  return wrk.format("GET", "/", { ["X-User"] = "user-" .. ((counter + (offset or 0)) % users) })
end
