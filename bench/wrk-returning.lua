-- wrk script: returning customers. POST /v1/webchat/messages for customers that already
-- chatted (their session and phone objects exist): customer i always sends from the same
-- session, phone and client IP, from the store page's origin. BENCH_CUSTOMERS of them,
-- taken in turn.
local counter = 0
local customers = tonumber(os.getenv("BENCH_CUSTOMERS") or "400")

function request()
  counter = counter + 1
  local i = counter % customers
  local session = string.format("00000000-0000-4000-9000-%012d", i)
  local phone = string.format("+61413%06d", i)
  local ip = string.format("10.200.%d.%d", math.floor(i / 256) % 256, i % 256)
  local body = string.format(
    '{"session_id":"%s","message":{"type":"text","value":"One more question"},' ..
    '"contact":{"phone":"%s","name":"Bench"},"location":{"page_url":"http://127.0.0.1/sydney/"}}',
    session, phone)
  return wrk.format("POST", nil, {["content-type"] = "application/json", ["origin"] = os.getenv("BENCH_ORIGIN"), ["cf-connecting-ip"] = ip}, body)
end
