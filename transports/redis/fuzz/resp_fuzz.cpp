// fuzz_redis_resp: everything the redis transport does with bytes from a Redis server, on
// arbitrary input. The first byte picks how the input is split into reads (a reply may arrive
// in any number of pieces); the rest goes through hiredis's reader with patchbay's limits, and
// every reply through what the transport makes of it: Pub/Sub pushes (envelope decoding),
// stream entries (XREAD / XREADGROUP / XAUTOCLAIM shapes) and error descriptions. Input that is
// not RESP must end in a reader error (the connection would be closed), never a crash, a leak or
// an allocation beyond the limits.
#include <patchbay/transports/redis/envelope.hpp>
#include <patchbay/transports/redis/resp.hpp>

#include "../src/entries.hpp"

#include <cstddef>
#include <cstdint>
#include <string>

using namespace patchbay::redis;

namespace {

void use(Reply& r) {
  (void)r.describe(100);
  if (r.is_array() && !r.elements.empty() && r.elements.size() <= 4 && r.elements[0].is_string()) {
    // Subscriber side: ["message", channel, body] / ["pmessage", pattern, channel, body].
    (void)decode_envelope(r.elements.back().str);
  }
  Reply copy = r;
  (void)detail::read_reply_entries(copy, "topic");
  (void)detail::deleted_ids(r);
  Reply list = r;
  (void)detail::entries_from(list, "topic");
  if (r.is_array() && r.elements.size() >= 2) (void)detail::entries_from(r.elements[1], "topic");
  if (r.is_string()) (void)detail::parse_id(r.str);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t chunk = 1 + data[0] % 64;
  ++data;
  --size;
  RespReader::Limits limits;
  limits.max_bulk = 1 << 16;  // small limits so that the fuzzer reaches them
  limits.max_elements = 1 << 10;
  limits.max_buffered = 1 << 17;
  RespReader reader(limits);
  std::size_t at = 0;
  while (at < size && reader.error().empty()) {
    const std::size_t n = std::min(chunk, size - at);
    if (!reader.feed(reinterpret_cast<const char*>(data) + at, n)) break;
    at += n;
    while (auto r = reader.next()) use(*r);
  }
  // Any input that is not RESP leaves the reader in error; any that is, fully parsed or
  // waiting for more.
  return 0;
}
