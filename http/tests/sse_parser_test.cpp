// The WHATWG event-stream parser (sse::Parser): a table of streams, one per rule of the
// spec's "interpreting an event stream", each with the events, retry values, comments and
// final last event ID it must produce. Every stream is parsed whole, split at every single
// position, split at every pair of positions, and fed byte by byte: the
// outcome must never depend on how the bytes arrived.
#include <patchbay/http/sse.hpp>

#include <gtest/gtest.h>

#include <ostream>
#include <string>
#include <vector>

namespace patchbay::http::sse {

// For readable failures and comparisons.
bool operator==(const Event& a, const Event& b) {
  return a.type == b.type && a.data == b.data && a.last_event_id == b.last_event_id;
}
void PrintTo(const Event& e, std::ostream* os) {
  *os << "{type=" << ::testing::PrintToString(e.type) << " data=" << ::testing::PrintToString(e.data)
      << " id=" << ::testing::PrintToString(e.last_event_id) << "}";
}

namespace {

using namespace std::string_literals;

Event message(std::string data, std::string id = {}) { return Event{"message", std::move(data), std::move(id)}; }
Event typed(std::string type, std::string data, std::string id = {}) {
  return Event{std::move(type), std::move(data), std::move(id)};
}

struct Outcome {
  std::vector<Event> events;
  std::vector<std::uint64_t> retries;
  std::vector<std::string> comments;
  std::string last_event_id;
  friend bool operator==(const Outcome&, const Outcome&) = default;
};

void PrintTo(const Outcome& o, std::ostream* os) {
  *os << "events " << ::testing::PrintToString(o.events) << ", retries " << ::testing::PrintToString(o.retries)
      << ", comments " << ::testing::PrintToString(o.comments) << ", last_event_id "
      << ::testing::PrintToString(o.last_event_id);
}

struct Case {
  const char* name;
  std::string stream;
  Outcome expected;
};

const std::string fffd = "\xEF\xBF\xBD";

const std::vector<Case>& cases() {
  static const std::vector<Case> table = {
      // Line ends.
      {"lf", "data: a\n\n", {.events = {message("a")}}},
      {"cr", "data: a\r\r", {.events = {message("a")}}},
      {"crlf", "data: a\r\n\r\n", {.events = {message("a")}}},
      {"mixed_line_ends", "data: a\rdata: b\ndata: c\r\n\n", {.events = {message("a\nb\nc")}}},
      {"lf_cr_is_two_line_ends", "data: a\n\rdata: b\n\n", {.events = {message("a"), message("b")}}},
      {"crlf_events_in_a_row", "data: a\r\n\r\ndata: b\r\n\r\n", {.events = {message("a"), message("b")}}},
      {"cr_then_multibyte", "data: a\r\xC3\xA9: x\n\n", {.events = {message("a")}}},
      // Byte order mark.
      {"bom_dropped", "\xEF\xBB\xBF" "data: x\n\n", {.events = {message("x")}}},
      {"second_bom_is_part_of_the_field_name", "\xEF\xBB\xBF\xEF\xBB\xBF" "data: x\n\n", {}},
      {"bom_later_is_not_dropped", "data: x\n\n\xEF\xBB\xBF" "data: y\n\n", {.events = {message("x")}}},
      {"broken_bom_is_replaced", "\xEF\xBB" "data: x\n\n", {}},
      // Comments.
      {"comment", ": hello\ndata: x\n\n", {.events = {message("x")}, .comments = {" hello"}}},
      {"empty_comment", ":\n\n", {.comments = {""}}},
      {"comment_looking_like_a_field", ":data: x\n\n", {.comments = {"data: x"}}},
      // Fields and values.
      {"field_without_colon", "data\n\n", {.events = {message("")}}},
      {"field_without_colon_adds_empty_lines", "data\ndata\ndata: x\n\n", {.events = {message("\n\nx")}}},
      {"no_space_after_colon", "data:x\n\n", {.events = {message("x")}}},
      {"only_one_space_removed", "data:  x\n\n", {.events = {message(" x")}}},
      {"tab_is_not_removed", "data:\tx\n\n", {.events = {message("\tx")}}},
      {"colon_in_value", "data: a:b\n\n", {.events = {message("a:b")}}},
      {"space_before_colon_makes_another_field", "data : x\n\n", {}},
      {"field_names_are_case_sensitive", "Data: x\n\n", {}},
      {"unknown_field_ignored", "foo: bar\ndata: x\nfoo\n\n", {.events = {message("x")}}},
      {"multi_line_data", "data: a\ndata: b\n\n", {.events = {message("a\nb")}}},
      {"only_the_last_lf_stripped", "data: a\ndata:\n\n", {.events = {message("a\n")}}},
      {"nul_in_data", "data: a\0b\n\n"s, {.events = {message("a\0b"s)}}},
      // Event types.
      {"event_type", "event: add\ndata: 1\n\n", {.events = {typed("add", "1")}}},
      {"event_type_reset_after_dispatch", "event: add\ndata: 1\n\ndata: 2\n\n",
       {.events = {typed("add", "1"), message("2")}}},
      {"empty_event_type_is_message", "event: add\nevent:\ndata: x\n\n", {.events = {message("x")}}},
      {"dataless_dispatch_resets_type", "event: foo\n\ndata: x\n\n", {.events = {message("x")}}},
      {"event_without_data_not_dispatched", "event: foo\n\n", {}},
      // Retry.
      {"retry", "retry: 1500\n\n", {.retries = {1500}}},
      {"retry_needs_digits_only",
       "retry: 15x\nretry: -1\nretry:\nretry\nretry: 1 \nretry:  2\nretry: 0x10\nretry: 007\n\n",
       {.retries = {7}}},
      {"retry_saturates", "retry: 99999999999999999999999\n\n", {.retries = {18446744073709551615ull}}},
      {"retry_applies_without_blank_line", "retry: 5\n", {.retries = {5}}},
      // Last event ID.
      {"id", "id: 1\ndata: a\n\n", {.events = {message("a", "1")}, .last_event_id = "1"}},
      {"id_with_nul_ignored", "id: 1\ndata: a\n\nid: 2\0x\ndata: b\n\n"s,
       {.events = {message("a", "1"), message("b", "1")}, .last_event_id = "1"}},
      {"id_without_data_persists", "id: 7\n\ndata: x\n\n", {.events = {message("x", "7")}, .last_event_id = "7"}},
      {"id_persists_across_events", "id: 7\ndata: a\n\ndata: b\n\n",
       {.events = {message("a", "7"), message("b", "7")}, .last_event_id = "7"}},
      {"empty_id_resets", "id: 7\ndata: a\n\nid\ndata: b\n\nid: 8\ndata: c\n\nid:\ndata: d\n\n",
       {.events = {message("a", "7"), message("b"), message("c", "8"), message("d")}}},
      {"id_keeps_spaces_after_the_first", "id:  5\ndata\n\n", {.events = {message("", " 5")}, .last_event_id = " 5"}},
      {"id_committed_by_blank_line_without_data", "id: 5\n\n", {.last_event_id = "5"}},
      {"id_after_data_still_applies", "data: a\nid: 3\n\n", {.events = {message("a", "3")}, .last_event_id = "3"}},
      // End of stream.
      {"unterminated_event_dropped", "data: a\n\ndata: b\n", {.events = {message("a")}}},
      {"partial_line_dropped", "data: a\n\ndata: b", {.events = {message("a")}}},
      {"unterminated_cr_event_dropped", "data: a\r", {}},
      {"unterminated_id_not_committed", "id: 1\ndata: a\n\nid: 2\ndata: b\n",
       {.events = {message("a", "1")}, .last_event_id = "1"}},
      // UTF-8.
      {"multibyte", "data: \xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\n\n", {.events = {message("\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80")}}},
      {"invalid_byte_replaced", "data: a\xFF" "b\n\n", {.events = {message("a" + fffd + "b")}}},
      {"overlong_replaced_per_byte", "data: \xC0\x80\n\n", {.events = {message(fffd + fffd)}}},
      {"truncated_sequence_is_one_replacement", "data: \xE2\x82x\n\n", {.events = {message(fffd + "x")}}},
      {"surrogate_replaced", "data: \xED\xA0\x80\n\n", {.events = {message(fffd + fffd + fffd)}}},
      {"beyond_unicode_replaced", "data: \xF4\x90\x80\x80\n\n", {.events = {message(fffd + fffd + fffd + fffd)}}},
      {"truncated_before_line_end", "data: \xF0\x9F\x98\n\n", {.events = {message(fffd)}}},
      {"lone_continuation", "data: \x80\x80" "a\n\n", {.events = {message(fffd + fffd + "a")}}},
      {"invalid_in_field_name", "da\xFFta: x\n\n", {}},
      {"invalid_then_cr", "data: \xC3\rdata: b\n\n", {.events = {message(fffd + "\nb")}}},
      {"truncated_at_end_of_stream", "data: a\n\ndata: \xE2\x82", {.events = {message("a")}}},
      // Everything together.
      {"mixed",
       "\xEF\xBB\xBF: stream start\r\nretry: 10\r\nid: 1\r\nevent: add\r\ndata: x\r\ndata:  y\r\n\r\n"
       "data\n\nid: 2\0\n:c\rdata: \xE2\x82\xAC\n\n"s,
       {.events = {typed("add", "x\n y", "1"), message("", "1"), message("\xE2\x82\xAC", "1")},
        .retries = {10},
        .comments = {" stream start", "c"},
        .last_event_id = "1"}},
  };
  return table;
}

Outcome parse(const std::vector<std::string_view>& chunks) {
  Outcome out;
  Parser parser;
  parser.on_event = [&out](Event&& e) { out.events.push_back(std::move(e)); };
  parser.on_retry = [&out](std::uint64_t ms) { out.retries.push_back(ms); };
  parser.on_comment = [&out](std::string_view text) { out.comments.emplace_back(text); };
  for (const auto chunk : chunks) parser.feed(chunk);
  parser.finish();
  out.last_event_id = parser.last_event_id();
  return out;
}

class ParserTable : public ::testing::TestWithParam<Case> {};

TEST_P(ParserTable, Whole) {
  const Case& c = GetParam();
  EXPECT_EQ(parse({c.stream}), c.expected);
}

TEST_P(ParserTable, EverySplitPoint) {
  const Case& c = GetParam();
  const std::string_view s = c.stream;
  for (std::size_t i = 0; i <= s.size(); ++i) {
    ASSERT_EQ(parse({s.substr(0, i), s.substr(i)}), c.expected) << "split at " << i;
  }
}

TEST_P(ParserTable, EveryPairOfSplitPoints) {
  const Case& c = GetParam();
  const std::string_view s = c.stream;
  for (std::size_t i = 0; i <= s.size(); ++i) {
    for (std::size_t j = i; j <= s.size(); ++j) {
      ASSERT_EQ(parse({s.substr(0, i), s.substr(i, j - i), s.substr(j)}), c.expected) << "split at " << i << ", " << j;
    }
  }
}

TEST_P(ParserTable, ByteByByte) {
  const Case& c = GetParam();
  std::vector<std::string_view> bytes;
  for (std::size_t i = 0; i < c.stream.size(); ++i) bytes.push_back(std::string_view(c.stream).substr(i, 1));
  EXPECT_EQ(parse(bytes), c.expected);
}

INSTANTIATE_TEST_SUITE_P(Rules, ParserTable, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<Case>& info) { return std::string(info.param.name); });

TEST(Parser, WorksWithoutCallbacks) {
  Parser parser;
  parser.feed(": c\nretry: 1\nid: 4\ndata: x\n\n");
  EXPECT_EQ(parser.last_event_id(), "4");
}

TEST(Parser, ResetStreamExpectsBomAgainAndKeepsLastEventId) {
  std::vector<Event> events;
  Parser parser;
  parser.on_event = [&events](Event&& e) { events.push_back(std::move(e)); };
  parser.feed("\xEF\xBB\xBFid: 1\ndata: a\n\nevent: t\nid: 2\ndata: partial\n");
  parser.reset_stream();
  EXPECT_EQ(parser.last_event_id(), "1");
  // The unterminated event, its type and its id are gone; a BOM is dropped again.
  parser.feed("\xEF\xBB\xBF" "data: b\n\n");
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0], message("a", "1"));
  EXPECT_EQ(events[1], message("b", "1"));
}

TEST(Parser, ResetStreamDropsHeldCarriageReturnAndPartialSequence) {
  std::vector<Event> events;
  Parser parser;
  parser.on_event = [&events](Event&& e) { events.push_back(std::move(e)); };
  parser.feed("data: a\r");
  parser.reset_stream();
  // A leading LF of the new stream is a line end of its own, not the second half of a CRLF.
  parser.feed("\ndata: b\n\n");
  parser.feed("data: \xE2\x82");
  parser.reset_stream();
  parser.feed("\xAC\n\n");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0], message("b"));
}

TEST(Parser, SetLastEventIdIsSentAndCarried) {
  std::vector<Event> events;
  Parser parser;
  parser.on_event = [&events](Event&& e) { events.push_back(std::move(e)); };
  parser.set_last_event_id("41");
  EXPECT_EQ(parser.last_event_id(), "41");
  parser.feed("data: a\n\n");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].last_event_id, "41");
}

TEST(Parser, LargeStreamInOddChunks) {
  std::string stream;
  for (int i = 0; i < 20000; ++i) {
    stream += "id: " + std::to_string(i) + (i % 3 == 0 ? "\r\n" : i % 3 == 1 ? "\r" : "\n");
    stream += "data: \xC3\xA9v" + std::to_string(i) + "\n\n";
  }
  std::vector<Event> events;
  Parser parser;
  parser.on_event = [&events](Event&& e) { events.push_back(std::move(e)); };
  for (std::size_t at = 0, size = 1; at < stream.size(); at += size, size = size * 7 % 97 + 1)
    parser.feed(std::string_view(stream).substr(at, size));
  ASSERT_EQ(events.size(), 20000u);
  for (int i = 0; i < 20000; ++i) {
    ASSERT_EQ(events[i], message("\xC3\xA9v" + std::to_string(i), std::to_string(i)));
  }
}

}  // namespace
}  // namespace patchbay::http::sse
