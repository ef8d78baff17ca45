// The SSE codec: Messages and gaps encoded as event-stream frames, parsed back with the WHATWG
// parser (what a browser or patchbay's EventSource does) and decoded. Plain text frames are
// checked byte for byte and through the parser, so that a browser's `event.data` is the payload
// unchanged; malformed input must make decode() return nullopt, never throw.
#include <patchbay/http/sse.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace patchbay::http::sse {
namespace {

using namespace std::string_literals;

// The events a stream made of `frames` yields, as a browser would dispatch them.
std::vector<Event> parse_frames(std::string_view frames) {
  std::vector<Event> events;
  Parser parser;
  parser.on_event = [&events](Event&& e) { events.push_back(std::move(e)); };
  parser.feed(frames);
  parser.finish();
  return events;
}

Event single_event(std::string_view frame) {
  auto events = parse_frames(frame);
  EXPECT_EQ(events.size(), 1u) << ::testing::PrintToString(std::string(frame));
  return events.empty() ? Event{} : events.front();
}

std::string all_bytes() {
  std::string s;
  for (int i = 0; i < 256; ++i) s.push_back(static_cast<char>(i));
  return s;
}

Message message_with(std::string payload) { return Message(Bytes(std::move(payload))); }

// ---------------------------------------------------------------------------------------------
// Plain format

TEST(SseCodec, PlainTextFrameIsExact) {
  EXPECT_EQ(encode(message_with("hello"), "p1", Format::plain), "id: p1\ndata: hello\n\n");
  EXPECT_EQ(encode(message_with("a\nb"), "7", Format::plain), "id: 7\ndata: a\ndata: b\n\n");
  EXPECT_EQ(encode(message_with(""), "7", Format::plain), "id: 7\ndata: \n\n");
  EXPECT_EQ(encode(message_with("a\n"), "7", Format::plain), "id: 7\ndata: a\ndata: \n\n");
  EXPECT_EQ(encode(message_with(" x"), "7", Format::plain), "id: 7\ndata:  x\n\n");
}

TEST(SseCodec, EmptyPositionWritesNoId) {
  EXPECT_EQ(encode(message_with("x"), "", Format::plain), "data: x\n\n");
}

TEST(SseCodec, TextPayloadsReachABrowserUnchanged) {
  const std::vector<std::string> payloads = {
      "hello", "a\nb", "", "\n", "\n\n", "a\n\n", " leading space", "  two", "tab\tinside", ":colon first",
      "data: looks like a field", "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80", "nul\0inside"s, "\xEF\xBB\xBF" "bom first"};
  for (const auto& payload : payloads) {
    SCOPED_TRACE(::testing::PrintToString(payload));
    ASSERT_TRUE(is_text(payload));
    const std::string frame = encode(message_with(payload), "42", Format::plain);
    const Event event = single_event(frame);
    EXPECT_EQ(event.type, "message");
    EXPECT_EQ(event.data, payload);
    EXPECT_EQ(event.last_event_id, "42");
    const auto decoded = decode(event, false);
    ASSERT_TRUE(decoded && decoded->message);
    EXPECT_FALSE(decoded->gap);
    EXPECT_EQ(decoded->message->payload.view(), payload);
    EXPECT_EQ(decoded->message->id, "");
    EXPECT_TRUE(decoded->message->headers.empty());
  }
}

TEST(SseCodec, IsText) {
  EXPECT_TRUE(is_text(""));
  EXPECT_TRUE(is_text("a\nb"));
  EXPECT_FALSE(is_text("a\rb"));
  EXPECT_FALSE(is_text("a\r\nb"));
  EXPECT_FALSE(is_text("\xFF"));
  EXPECT_FALSE(is_text("\xC3"));              // truncated
  EXPECT_FALSE(is_text("\xED\xA0\x80"));      // surrogate
  EXPECT_FALSE(is_text("\xC0\x80"));          // overlong
  EXPECT_TRUE(is_text("\xF4\x8F\xBF\xBF"));   // U+10FFFF
  EXPECT_FALSE(is_text("\xF4\x90\x80\x80"));  // beyond
}

TEST(SseCodec, NonTextPayloadsGoAsBinary) {
  const std::vector<std::string> payloads = {"x\ry", "\r", "\r\n", "\xFF\xFE", all_bytes(), "\xC3"};
  for (const auto& payload : payloads) {
    SCOPED_TRACE(::testing::PrintToString(payload));
    const std::string frame = encode(message_with(payload), "9", Format::plain);
    EXPECT_EQ(frame, "id: 9\nevent: binary\ndata: " + base64_encode(payload) + "\n\n");
    const Event event = single_event(frame);
    EXPECT_EQ(event.type, "binary");
    EXPECT_EQ(event.last_event_id, "9");
    const auto decoded = decode(event, false);
    ASSERT_TRUE(decoded && decoded->message);
    EXPECT_EQ(decoded->message->payload.view(), payload);
  }
}

TEST(SseCodec, ForeignEventTypeBecomesAHeader) {
  const auto decoded = decode(Event{"update", "x\ny", "3"}, false);
  ASSERT_TRUE(decoded && decoded->message);
  EXPECT_EQ(decoded->message->payload.view(), "x\ny");
  EXPECT_EQ(decoded->message->headers, (Headers{{"sse-event", "update"}}));
  EXPECT_EQ(decoded->message->id, "");
}

TEST(SseCodec, ForeignEventTypeIsPlainEvenWithEnvelope) {
  const auto decoded = decode(Event{"update", "not json", ""}, true);
  ASSERT_TRUE(decoded && decoded->message);
  EXPECT_EQ(decoded->message->payload.view(), "not json");
}

// ---------------------------------------------------------------------------------------------
// Envelope format

Message rich_message(std::string payload) {
  Message msg = message_with(std::move(payload));
  msg.id = "0123456789abcdef";
  msg.headers.add("content-type", "text/plain");
  msg.headers.add("x-multi", "1");
  msg.headers.add("x-multi", "2");
  msg.headers.add("x-lines", "a\r\nb\"c\\");
  return msg;
}

void expect_envelope_round_trip(const Message& msg) {
  const std::string frame = encode(msg, "p-17", Format::envelope);
  // id line, one data line, blank line: the JSON never spans lines.
  ASSERT_TRUE(frame.starts_with("id: p-17\ndata: {"));
  ASSERT_TRUE(frame.ends_with("}\n\n"));
  const std::string_view json = std::string_view(frame).substr(15, frame.size() - 17);
  EXPECT_EQ(json.find_first_of("\r\n"), std::string_view::npos);
  EXPECT_TRUE(is_text(json));

  const Event event = single_event(frame);
  EXPECT_EQ(event.type, "message");
  EXPECT_EQ(event.last_event_id, "p-17");
  const auto decoded = decode(event, true);
  ASSERT_TRUE(decoded && decoded->message);
  EXPECT_EQ(decoded->message->id, msg.id);
  EXPECT_EQ(decoded->message->headers, msg.headers);
  EXPECT_EQ(decoded->message->payload, msg.payload);
}

TEST(SseCodec, EnvelopeCarriesIdHeadersAndText) {
  expect_envelope_round_trip(rich_message("line 1\nline 2\r\n\xE2\x82\xAC \"quoted\" \\ \0 end"s));
  const std::string frame = encode(rich_message("hi"), "p-17", Format::envelope);
  const auto v = boost::json::parse(frame.substr(15, frame.size() - 17));
  const auto& o = v.as_object();
  EXPECT_EQ(o.at("id").as_string(), "0123456789abcdef");
  EXPECT_EQ(o.at("payload").as_string(), "hi");
  EXPECT_EQ(o.at("headers").as_array().size(), 4u);
  EXPECT_EQ(o.at("headers").as_array()[0].as_array()[0].as_string(), "content-type");
  EXPECT_FALSE(o.contains("payload_base64"));
}

TEST(SseCodec, EnvelopeCarriesBinary) {
  expect_envelope_round_trip(rich_message(all_bytes()));
  const std::string frame = encode(message_with("\xFF"), "1", Format::envelope);
  EXPECT_NE(frame.find("\"payload_base64\":\"/w==\""), std::string::npos) << frame;
}

TEST(SseCodec, EnvelopeCarriesEmptyMessage) {
  expect_envelope_round_trip(Message());
}

TEST(SseCodec, EnvelopeCarriesNonUtf8HeadersAndId) {
  Message msg = rich_message("x");
  msg.headers.add("x-raw", "\xFF\x00\x80"s);
  msg.id = "id\xFE";
  expect_envelope_round_trip(msg);
  const std::string frame = encode(msg, "p-17", Format::envelope);
  EXPECT_NE(frame.find("\"headers_base64\""), std::string::npos);
  EXPECT_NE(frame.find("\"id_base64\""), std::string::npos);
}

TEST(SseCodec, PlainMessageDecodedAsEnvelopeIsMalformed) {
  EXPECT_FALSE(decode(Event{"message", "hello", "1"}, true));
}

// ---------------------------------------------------------------------------------------------
// Gaps, retry, comments

TEST(SseCodec, GapRoundTrip) {
  Gap gap;
  gap.last_seen = Position::after("e1:17");
  gap.resumes_at = Position::after("e1:42");
  gap.missed = 24;
  gap.reason = "history trimmed";
  const std::string frame = encode_gap(gap);
  EXPECT_TRUE(frame.starts_with("event: gap\ndata: {")) << frame;
  EXPECT_EQ(frame.find("id:"), std::string::npos);
  const Event event = single_event(frame);
  EXPECT_EQ(event.type, "gap");
  const auto decoded = decode(event, false);
  ASSERT_TRUE(decoded && decoded->gap);
  EXPECT_FALSE(decoded->message);
  EXPECT_EQ(decoded->gap->last_seen, gap.last_seen);
  EXPECT_EQ(decoded->gap->resumes_at, gap.resumes_at);
  EXPECT_EQ(decoded->gap->missed, 24u);
  EXPECT_EQ(decoded->gap->reason, "history trimmed");
}

TEST(SseCodec, GapWithUnknownPositions) {
  Gap gap;
  gap.reason = "epoch changed";
  const std::string frame = encode_gap(gap);
  EXPECT_NE(frame.find("\"last_seen\":null"), std::string::npos) << frame;
  const auto decoded = decode(single_event(frame), true);
  ASSERT_TRUE(decoded && decoded->gap);
  EXPECT_TRUE(decoded->gap->last_seen.empty());
  EXPECT_TRUE(decoded->gap->resumes_at.empty());
  EXPECT_EQ(decoded->gap->missed, 0u);
  // Empty strings and missing members mean "unknown" too.
  const auto sparse = decode(Event{"gap", R"({"last_seen":"","missed":3})", ""}, false);
  ASSERT_TRUE(sparse && sparse->gap);
  EXPECT_TRUE(sparse->gap->last_seen.empty());
  EXPECT_EQ(sparse->gap->missed, 3u);
  EXPECT_EQ(sparse->gap->reason, "");
}

TEST(SseCodec, RetryFrame) {
  EXPECT_EQ(encode_retry(250), "retry: 250\n\n");
  std::vector<std::uint64_t> retries;
  Parser parser;
  parser.on_retry = [&retries](std::uint64_t ms) { retries.push_back(ms); };
  parser.feed(encode_retry(250));
  EXPECT_EQ(retries, std::vector<std::uint64_t>{250});
}

TEST(SseCodec, CommentFrame) {
  EXPECT_EQ(encode_comment("ping"), ": ping\n\n");
  EXPECT_EQ(encode_comment("a\r\nb"), ": a  b\n\n");
  std::vector<std::string> comments;
  Parser parser;
  parser.on_comment = [&comments](std::string_view text) { comments.emplace_back(text); };
  bool dispatched = false;
  parser.on_event = [&dispatched](Event&&) { dispatched = true; };
  parser.feed(encode_comment("x\ndata: injected"));
  EXPECT_EQ(comments, std::vector<std::string>{" x data: injected"});
  EXPECT_FALSE(dispatched);
}

// ---------------------------------------------------------------------------------------------
// Base64

TEST(SseCodec, Base64Rfc4648Vectors) {
  const std::vector<std::pair<std::string, std::string>> vectors = {
      {"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"}, {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="},
      {"foobar", "Zm9vYmFy"}};
  for (const auto& [plain, encoded] : vectors) {
    EXPECT_EQ(base64_encode(plain), encoded);
    EXPECT_EQ(base64_decode(encoded), plain);
  }
  EXPECT_EQ(base64_decode(base64_encode(all_bytes())), all_bytes());
  EXPECT_EQ(base64_encode("\xFB\xFF"), "+/8=");
}

TEST(SseCodec, Base64RejectsMalformed) {
  for (const char* bad : {"Zg", "Zg=", "Z===", "====", "Zm9", "Zg==Zg==", "Zh==", "Zm9=", "Zm 9v", "Zm9v\n", "Zm-v",
                          "Zm_v", "=m9v", "Z=9v", "Zm=v"}) {
    EXPECT_FALSE(base64_decode(bad)) << bad;
  }
}

// ---------------------------------------------------------------------------------------------
// Malformed input

TEST(SseCodec, MalformedInputIsRejected) {
  const std::vector<Event> bad = {
      {"binary", "not base64!", ""},
      {"binary", "Zg=", ""},
      {"gap", "", ""},
      {"gap", "not json", ""},
      {"gap", "[1,2]", ""},
      {"gap", R"({"missed":-1})", ""},
      {"gap", R"({"missed":"3"})", ""},
      {"gap", R"({"missed":1.5})", ""},
      {"gap", R"({"last_seen":17})", ""},
      {"gap", R"({"resumes_at":{}})", ""},
      {"gap", R"({"reason":null})", ""},
      {"gap", R"({"reason":"x"} trailing)", ""},
      {"message", "", ""},
      {"message", "null", ""},
      {"message", R"("just a string")", ""},
      {"message", R"({"id":1})", ""},
      {"message", R"({"id_base64":"***"})", ""},
      {"message", R"({"headers":{}})", ""},
      {"message", R"({"headers":[["a"]]})", ""},
      {"message", R"({"headers":[["a","b","c"]]})", ""},
      {"message", R"({"headers":[["a",1]]})", ""},
      {"message", R"({"headers":["ab"]})", ""},
      {"message", R"({"headers_base64":[["YQ==","***"]]})", ""},
      {"message", R"({"payload":5})", ""},
      {"message", R"({"payload_base64":"abc"})", ""},
      {"message", "{\"payload\":\"\xFF\"}", ""},
      {"message", std::string(100000, '[') + std::string(100000, ']'), ""},
      {"message", std::string(100000, '{'), ""},
  };
  for (const auto& event : bad) {
    EXPECT_FALSE(decode(event, true)) << event.type << " " << event.data.substr(0, 60);
  }
}

TEST(SseCodec, EnvelopeToleratesMissingAndUnknownMembers) {
  const auto decoded = decode(Event{"message", R"({"payload":"p","future":[1,{"x":2}]})", ""}, true);
  ASSERT_TRUE(decoded && decoded->message);
  EXPECT_EQ(decoded->message->payload.view(), "p");
  EXPECT_EQ(decoded->message->id, "");
  EXPECT_TRUE(decoded->message->headers.empty());
}

}  // namespace
}  // namespace patchbay::http::sse
