// libFuzzer target for the server-sent events parser and codec (sse.hpp).
//
// The first two bytes choose a split point; the rest is an event stream. It is parsed once in
// two pieces split there and once byte by byte: both parsers must report the same events,
// retry values, comments and last event ID, or the target aborts (the parser's outcome must
// never depend on how the bytes arrived). Every event is then decoded both ways (decode must
// never throw or crash), and every message event's payload must survive a round trip through
// encode() and the parser, in the plain and the envelope format.
#include <patchbay/http/sse.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace patchbay;
using namespace patchbay::http;

struct Outcome {
  std::vector<sse::Event> events;
  std::vector<std::uint64_t> retries;
  std::vector<std::string> comments;
};

void record_into(sse::Parser& parser, Outcome& out) {
  parser.on_event = [&out](sse::Event&& e) { out.events.push_back(std::move(e)); };
  parser.on_retry = [&out](std::uint64_t ms) { out.retries.push_back(ms); };
  parser.on_comment = [&out](std::string_view text) { out.comments.emplace_back(text); };
}

bool same(const sse::Event& a, const sse::Event& b) {
  return a.type == b.type && a.data == b.data && a.last_event_id == b.last_event_id;
}

bool same(const Outcome& a, const Outcome& b) {
  if (a.events.size() != b.events.size() || a.retries != b.retries || a.comments != b.comments) return false;
  for (std::size_t i = 0; i < a.events.size(); ++i)
    if (!same(a.events[i], b.events[i])) return false;
  return true;
}

void check(bool condition) {
  if (!condition) std::abort();
}

std::vector<sse::Event> parse(std::string_view stream) {
  Outcome out;
  sse::Parser parser;
  record_into(parser, out);
  parser.feed(stream);
  parser.finish();
  return std::move(out.events);
}

// A message's payload (and, in the envelope format, id and headers) comes back unchanged.
void check_round_trip(const Message& msg) {
  const auto plain = parse(sse::encode(msg, "1", sse::Format::plain));
  check(plain.size() == 1);
  const auto back = sse::decode(plain[0], false);
  check(back && back->message && back->message->payload == msg.payload);

  const auto enveloped = parse(sse::encode(msg, "1", sse::Format::envelope));
  check(enveloped.size() == 1);
  const auto opened = sse::decode(enveloped[0], true);
  check(opened && opened->message && opened->message->payload == msg.payload &&
        opened->message->headers == msg.headers && opened->message->id == msg.id);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::string_view stream(reinterpret_cast<const char*>(data) + 2, size - 2);
  const std::size_t split = (static_cast<std::size_t>(data[0]) | static_cast<std::size_t>(data[1]) << 8) % (stream.size() + 1);

  Outcome in_two;
  sse::Parser two;
  record_into(two, in_two);
  two.feed(stream.substr(0, split));
  two.feed(stream.substr(split));
  two.finish();

  Outcome in_bytes;
  sse::Parser bytes;
  record_into(bytes, in_bytes);
  for (std::size_t i = 0; i < stream.size(); ++i) bytes.feed(stream.substr(i, 1));
  bytes.finish();

  check(same(in_two, in_bytes));
  check(two.last_event_id() == bytes.last_event_id());

  for (const auto& event : in_two.events) {
    // What the parser dispatches is valid UTF-8 split into lines: no CR, no NUL in ids.
    check(!event.type.empty() && sse::is_text(event.data) && sse::is_text(event.type));
    check(event.last_event_id.find_first_of(std::string_view("\r\n\0", 3)) == std::string::npos);
    const auto plain = sse::decode(event, false);
    const auto enveloped = sse::decode(event, true);
    if (plain && plain->message) check_round_trip(*plain->message);
    if (enveloped && enveloped->message) check_round_trip(*enveloped->message);
  }
  return 0;
}
