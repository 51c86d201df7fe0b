-- wrk script: first messages. POST /v1/webchat/messages with a fresh session, phone and
-- client IP per request (each visitor their own, as in production), from the store
-- page's origin, so every request creates its session and phone objects.
local counter = 0
local thread_id = 0

function setup(thread)
  thread:set("thread_id", thread_id)
  thread_id = thread_id + 1
end

function request()
  counter = counter + 1
  local n = thread_id * 1000000 + counter
  local session = string.format("00000000-0000-4000-8000-%012d", n)
  local phone = string.format("+61412%06d", n % 1000000)
  local ip = string.format("10.%d.%d.%d", math.floor(n / 65536) % 256, math.floor(n / 256) % 256, n % 256)
  local body = string.format(
    '{"session_id":"%s","message":{"type":"text","value":"Is the blue one in stock?"},' ..
    '"contact":{"phone":"%s","name":"Bench"},"location":{"page_url":"http://127.0.0.1/sydney/"}}',
    session, phone)
  return wrk.format("POST", nil, {["content-type"] = "application/json", ["origin"] = os.getenv("BENCH_ORIGIN"), ["cf-connecting-ip"] = ip}, body)
end
