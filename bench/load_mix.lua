-- load_mix.lua: the request mix of bench/load.py for wrk.
-- Cycles through compare, rank (small lists), catalogue pages, training
-- job polls and search polls; the cells and the job ids come from the
-- environment.
local cells = {}
for c in string.gmatch(os.getenv("LOAD_CELLS") or "", "[^ ]+") do
  cells[#cells + 1] = c
end
local job = os.getenv("LOAD_JOB") or "1"
local search = os.getenv("LOAD_SEARCH") or "2"
local token = os.getenv("LOAD_TOKEN")
local n = 0

local function pick()
  return cells[math.random(#cells)]
end

request = function()
  n = n + 1
  local headers = {["Content-Type"] = "application/json"}
  if token then headers["Authorization"] = "Bearer " .. token end
  local k = n % 5
  if k == 0 then
    return wrk.format("POST", "/v1/compare", headers,
      string.format('{"a":"%s","b":"%s"}', pick(), pick()))
  elseif k == 1 then
    return wrk.format("POST", "/v1/rank", headers,
      string.format('{"architectures":["%s","%s","%s","%s","%s"]}',
                    pick(), pick(), pick(), pick(), pick()))
  elseif k == 2 then
    return wrk.format("GET",
      "/v1/architectures?dataset=cifar10&order=metric_desc&limit=20", headers)
  elseif k == 3 then
    return wrk.format("GET", "/v1/jobs/" .. job, headers)
  else
    return wrk.format("GET", "/v1/searches/" .. search, headers)
  end
end
