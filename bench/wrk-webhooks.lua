-- wrk script: POST /webhooks/podium with pre-signed, distinct deliveries read from the
-- file in WEBHOOK_REQUESTS (one per line: timestamp TAB signature TAB body), so each is
-- a new event (verified, claimed in its shard, stored) rather than a duplicate.
local requests = {}
local index = 0

function init(args)
  local path = os.getenv("WEBHOOK_REQUESTS")
  for line in io.lines(path) do
    local ts, sig, body = line:match("^([^\t]+)\t([^\t]+)\t(.*)$")
    if ts then
      requests[#requests + 1] = wrk.format("POST", nil, {
        ["content-type"] = "application/json",
        ["podium-timestamp"] = ts,
        ["podium-signature"] = sig,
      }, body)
    end
  end
end

function request()
  index = index + 1
  if index > #requests then index = 1 end
  return requests[index]
end
