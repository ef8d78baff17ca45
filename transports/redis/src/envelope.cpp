// The Pub/Sub envelope (see envelope.hpp for the layout).
#include <patchbay/transports/redis/envelope.hpp>

#include <chrono>
#include <cstdint>

namespace patchbay::redis {
namespace {

void put_u32(std::string& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out += static_cast<char>((v >> shift) & 0xff);
}

void put_u64(std::string& out, std::uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) out += static_cast<char>((v >> shift) & 0xff);
}

void put_string(std::string& out, std::string_view s) {
  put_u32(out, static_cast<std::uint32_t>(s.size()));
  out.append(s);
}

struct Cursor {
  std::string_view in;
  bool ok = true;

  std::uint64_t take_uint(int bytes) {
    if (!ok || in.size() < static_cast<std::size_t>(bytes)) {
      ok = false;
      return 0;
    }
    std::uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v = (v << 8) | static_cast<unsigned char>(in[static_cast<std::size_t>(i)]);
    in.remove_prefix(static_cast<std::size_t>(bytes));
    return v;
  }
  std::string take_string() {
    const auto n = take_uint(4);
    if (!ok || in.size() < n) {
      ok = false;
      return {};
    }
    std::string s(in.substr(0, n));
    in.remove_prefix(n);
    return s;
  }
};

}  // namespace

Message::time_point time_from_ms(long long ms) noexcept {
  using ns = Message::time_point::duration;
  constexpr long long limit = std::chrono::duration_cast<std::chrono::milliseconds>(ns::max()).count() - 1;
  if (ms < -limit || ms > limit) return {};
  return Message::time_point(std::chrono::duration_cast<ns>(std::chrono::milliseconds(ms)));
}

std::string envelope_head(const Message& msg) {
  std::string out;
  std::size_t size = kEnvelopeMagic.size() + 4 + msg.id.size() + 8 + 4;
  for (const auto& [k, v] : msg.headers) size += 8 + k.size() + v.size();
  out.reserve(size);
  out.append(kEnvelopeMagic);
  put_string(out, msg.id);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(msg.time.time_since_epoch()).count();
  put_u64(out, static_cast<std::uint64_t>(ms));
  put_u32(out, static_cast<std::uint32_t>(msg.headers.size()));
  for (const auto& [k, v] : msg.headers) {
    put_string(out, k);
    put_string(out, v);
  }
  return out;
}

std::optional<Message> decode_envelope(std::string_view wire) {
  if (!wire.starts_with(kEnvelopeMagic)) return std::nullopt;
  Cursor c{wire.substr(kEnvelopeMagic.size())};
  Message m;
  m.id = c.take_string();
  const auto ms = static_cast<std::int64_t>(c.take_uint(8));
  const auto count = c.take_uint(4);
  // Every header takes at least 8 bytes: a count beyond what is left is malformed (and must
  // not drive a long loop).
  if (!c.ok || count > c.in.size() / 8) return std::nullopt;
  for (std::uint64_t i = 0; i < count && c.ok; ++i) {
    std::string name = c.take_string();
    std::string value = c.take_string();
    if (c.ok) m.headers.add(std::move(name), std::move(value));
  }
  if (!c.ok || m.id.empty()) return std::nullopt;
  m.time = time_from_ms(ms);
  if (m.time == Message::time_point{}) m.time = std::chrono::system_clock::now();
  m.payload = Bytes(c.in);
  return m;
}

}  // namespace patchbay::redis
