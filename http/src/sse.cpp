// Server-sent events: the WHATWG event-stream parser and the Message codec (see sse.hpp).
//
// The parser is on the hot path of every SSE client, so it works on whole chunks: UTF-8 is
// validated eight ASCII bytes at a time and copied only when a chunk holds an invalid sequence;
// line ends are found with memchr; a line that lies entirely inside one chunk is processed in
// place, and only a line split across chunks is collected in `line_`.
#include <patchbay/http/sse.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>

namespace patchbay::http::sse {
namespace {

constexpr std::string_view replacement_character = "\xEF\xBF\xBD";  // U+FFFD
constexpr std::string_view byte_order_mark = "\xEF\xBB\xBF";        // U+FEFF

// One step of the Encoding standard's UTF-8 decoder, from a lead byte: a complete valid
// sequence, an invalid one (`length` bytes become one U+FFFD; the byte that broke it is read
// again as a new lead), or a valid but incomplete prefix that runs to the end of the input.
enum class sequence { valid, invalid, incomplete };
struct step {
  sequence kind;
  std::size_t length;
};

step classify(const char* p, std::size_t n) {
  const auto lead = static_cast<unsigned char>(p[0]);
  if (lead < 0x80) return {sequence::valid, 1};
  std::size_t needed = 0;
  unsigned char lower = 0x80;
  unsigned char upper = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    needed = 1;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    needed = 2;
    if (lead == 0xE0) lower = 0xA0;  // overlong
    if (lead == 0xED) upper = 0x9F;  // surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    needed = 3;
    if (lead == 0xF0) lower = 0x90;  // overlong
    if (lead == 0xF4) upper = 0x8F;  // beyond U+10FFFF
  } else {
    return {sequence::invalid, 1};
  }
  for (std::size_t i = 1; i <= needed; ++i) {
    if (i == n) return {sequence::incomplete, n};
    const auto b = static_cast<unsigned char>(p[i]);
    if (b < lower || b > upper) return {sequence::invalid, i};
    lower = 0x80;
    upper = 0xBF;
  }
  return {sequence::valid, needed + 1};
}

// Length of the longest prefix of `s` made of complete, valid UTF-8 sequences.
std::size_t valid_prefix(std::string_view s) {
  const char* p = s.data();
  const std::size_t n = s.size();
  std::size_t i = 0;
  while (i < n) {
    while (i + 8 <= n) {
      std::uint64_t word;
      std::memcpy(&word, p + i, 8);
      if (word & 0x8080808080808080ull) break;
      i += 8;
    }
    if (i == n) break;
    if (static_cast<unsigned char>(p[i]) < 0x80) {
      ++i;
      continue;
    }
    const step s = classify(p + i, n - i);
    if (s.kind != sequence::valid) return i;
    i += s.length;
  }
  return i;
}

bool valid_utf8(std::string_view s) { return valid_prefix(s) == s.size(); }

// `s` with every invalid (or, at the end, incomplete) sequence replaced by U+FFFD.
std::string repaired_utf8(std::string_view s) {
  std::string out;
  while (!s.empty()) {
    const std::size_t run = valid_prefix(s);
    out.append(s.substr(0, run));
    s.remove_prefix(run);
    if (s.empty()) break;
    out.append(replacement_character);
    const step bad = classify(s.data(), s.size());
    s.remove_prefix(bad.length);
  }
  return out;
}

// A non-negative decimal; values beyond uint64 saturate (a reconnection time that long is
// "never" either way).
std::optional<std::uint64_t> parse_digits(std::string_view value) {
  if (value.empty()) return std::nullopt;
  std::uint64_t n = 0;
  constexpr auto max = std::numeric_limits<std::uint64_t>::max();
  for (const char c : value) {
    if (c < '0' || c > '9') return std::nullopt;
    const auto digit = static_cast<std::uint64_t>(c - '0');
    n = n > (max - digit) / 10 ? max : n * 10 + digit;
  }
  return n;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Parser

Parser::Parser() = default;

void Parser::feed(std::string_view bytes) {
  if (!pending_utf8_.empty()) {
    // Finish the sequence the last chunk ended in; it is at most four bytes long.
    const std::size_t held = pending_utf8_.size();
    pending_utf8_.append(bytes.substr(0, 4 - held));
    const step s = classify(pending_utf8_.data(), pending_utf8_.size());
    if (s.kind == sequence::incomplete) return;  // the whole chunk was too short to finish it
    // An invalid sequence ends before the byte that broke it, which is read again below.
    const std::string piece =
        s.kind == sequence::valid ? pending_utf8_.substr(0, s.length) : std::string(replacement_character);
    bytes.remove_prefix(s.length - held);
    pending_utf8_.clear();
    process_text(piece);
  }

  const std::size_t valid = valid_prefix(bytes);
  if (valid == bytes.size()) {
    process_text(bytes);
    return;
  }
  repaired_.assign(bytes.substr(0, valid));
  bytes.remove_prefix(valid);
  while (!bytes.empty()) {
    const step s = classify(bytes.data(), bytes.size());
    if (s.kind == sequence::incomplete) {
      pending_utf8_.assign(bytes);
      break;
    }
    // valid_prefix stopped here, so the sequence is invalid.
    repaired_.append(replacement_character);
    bytes.remove_prefix(s.length);
    const std::size_t run = valid_prefix(bytes);
    repaired_.append(bytes.substr(0, run));
    bytes.remove_prefix(run);
  }
  process_text(repaired_);
}

// `text` is decoded UTF-8 made of whole code points, so a BOM is never split across calls.
void Parser::process_text(std::string_view text) {
  if (text.empty()) return;
  if (!bom_checked_) {
    bom_checked_ = true;
    if (text.starts_with(byte_order_mark)) text.remove_prefix(byte_order_mark.size());
  }
  if (after_cr_ && !text.empty()) {
    after_cr_ = false;
    if (text.front() == '\n') text.remove_prefix(1);  // the LF of a CRLF split across chunks
  }
  const char* p = text.data();
  const char* const end = p + text.size();
  // The next LF and CR at or after p; each is searched again only once p has passed it, so a
  // chunk is scanned at most once per character even when one of them never occurs.
  const auto find = [end](const char* from, char c) {
    const void* hit = std::memchr(from, c, static_cast<std::size_t>(end - from));
    return hit ? static_cast<const char*>(hit) : end;
  };
  const char* lf = find(p, '\n');
  const char* cr = find(p, '\r');
  for (;;) {
    if (lf < p) lf = find(p, '\n');
    if (cr < p) cr = find(p, '\r');
    const char* const eol = std::min(lf, cr);
    if (eol == end) {
      line_.append(p, end);
      return;
    }
    const std::string_view part(p, static_cast<std::size_t>(eol - p));
    if (line_.empty()) {
      process_line(part);
    } else {
      line_.append(part);
      process_line(line_);
      line_.clear();
    }
    p = eol + 1;
    if (*eol == '\r') {
      if (p == end) {
        after_cr_ = true;
        return;
      }
      if (*p == '\n') ++p;
    }
  }
}

void Parser::process_line(std::string_view line) {
  if (line.empty()) {
    dispatch();
    return;
  }
  if (line.front() == ':') {
    if (on_comment) on_comment(line.substr(1));
    return;
  }
  std::string_view field = line;
  std::string_view value;
  if (const auto colon = line.find(':'); colon != std::string_view::npos) {
    field = line.substr(0, colon);
    value = line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  }
  if (field == "data") {
    data_.append(value);
    data_.push_back('\n');
  } else if (field == "event") {
    type_.assign(value);
  } else if (field == "id") {
    if (value.find('\0') == std::string_view::npos) id_buffer_.assign(value);
  } else if (field == "retry") {
    if (const auto ms = parse_digits(value); ms && on_retry) on_retry(*ms);
  }
}

void Parser::dispatch() {
  // The spec sets the last event ID before looking at the data: a blank line after an id
  // commits it even when no event is dispatched.
  last_event_id_ = id_buffer_;
  if (data_.empty()) {
    type_.clear();
    return;
  }
  data_.pop_back();  // the LF after the last data line
  Event event;
  event.type = type_.empty() ? std::string("message") : std::move(type_);
  event.data = std::move(data_);
  event.last_event_id = last_event_id_;
  data_.clear();
  type_.clear();
  if (on_event) on_event(std::move(event));
}

void Parser::clear_stream_state() {
  line_.clear();
  pending_utf8_.clear();
  data_.clear();
  type_.clear();
  id_buffer_ = last_event_id_;
  after_cr_ = false;
}

void Parser::finish() { clear_stream_state(); }

void Parser::reset_stream() {
  clear_stream_state();
  bom_checked_ = false;
}

// ---------------------------------------------------------------------------------------------
// Codec

namespace {

namespace json = boost::json;

json::string_view as_json(std::string_view s) { return {s.data(), s.size()}; }
std::string_view as_std(json::string_view s) { return {s.data(), s.size()}; }

json::value position_to_json(const Position& p) {
  if (p.empty()) return nullptr;
  return json::value(as_json(repaired_utf8(p.token())));
}

std::string envelope_json(const Message& msg) {
  json::object o;
  if (valid_utf8(msg.id))
    o["id"] = as_json(msg.id);
  else
    o["id_base64"] = as_json(base64_encode(msg.id));

  const bool headers_text = std::all_of(msg.headers.begin(), msg.headers.end(), [](const auto& h) {
    return valid_utf8(h.first) && valid_utf8(h.second);
  });
  json::array headers;
  headers.reserve(msg.headers.size());
  for (const auto& [name, value] : msg.headers) {
    if (headers_text)
      headers.push_back(json::array{as_json(name), as_json(value)});
    else
      headers.push_back(json::array{as_json(base64_encode(name)), as_json(base64_encode(value))});
  }
  o[headers_text ? "headers" : "headers_base64"] = std::move(headers);

  const std::string_view payload = msg.payload.view();
  if (valid_utf8(payload))
    o["payload"] = as_json(payload);
  else
    o["payload_base64"] = as_json(base64_encode(payload));
  return json::serialize(o);
}

std::optional<json::object> parse_object(std::string_view text) {
  json::error_code ec;
  json::value v = json::parse(as_json(text), ec);
  if (ec || !v.is_object()) return std::nullopt;
  return std::move(v.as_object());
}

// A string member, base64-decoded when `base64`; absent members yield `fallback`.
std::optional<std::string> string_member(const json::object& o, std::string_view key, bool base64,
                                         std::optional<std::string> fallback) {
  const auto it = o.find(as_json(key));
  if (it == o.end()) return fallback;
  const json::string* s = it->value().if_string();
  if (!s) return std::nullopt;
  if (base64) return base64_decode(as_std(*s));
  return std::string(as_std(*s));
}

std::optional<Position> position_member(const json::object& o, std::string_view key) {
  const auto it = o.find(as_json(key));
  if (it == o.end() || it->value().is_null()) return Position();
  const json::string* s = it->value().if_string();
  if (!s) return std::nullopt;
  if (s->empty()) return Position();
  return Position::after(std::string(as_std(*s)));
}

std::optional<Gap> decode_gap(std::string_view data) {
  const auto o = parse_object(data);
  if (!o) return std::nullopt;
  Gap gap;
  auto last_seen = position_member(*o, "last_seen");
  auto resumes_at = position_member(*o, "resumes_at");
  auto reason = string_member(*o, "reason", false, std::string());
  if (!last_seen || !resumes_at || !reason) return std::nullopt;
  gap.last_seen = std::move(*last_seen);
  gap.resumes_at = std::move(*resumes_at);
  gap.reason = std::move(*reason);
  if (const auto it = o->find("missed"); it != o->end() && !it->value().is_null()) {
    if (const auto* u = it->value().if_uint64()) {
      gap.missed = *u;
    } else if (const auto* i = it->value().if_int64(); i && *i >= 0) {
      gap.missed = static_cast<std::uint64_t>(*i);
    } else {
      return std::nullopt;
    }
  }
  return gap;
}

std::optional<Headers> headers_member(const json::object& o, std::string_view key, bool base64) {
  Headers headers;
  const auto it = o.find(as_json(key));
  if (it == o.end()) return headers;
  const json::array* list = it->value().if_array();
  if (!list) return std::nullopt;
  for (const json::value& item : *list) {
    const json::array* pair = item.if_array();
    if (!pair || pair->size() != 2) return std::nullopt;
    const json::string* name = (*pair)[0].if_string();
    const json::string* value = (*pair)[1].if_string();
    if (!name || !value) return std::nullopt;
    if (!base64) {
      headers.add(std::string(as_std(*name)), std::string(as_std(*value)));
      continue;
    }
    auto raw_name = base64_decode(as_std(*name));
    auto raw_value = base64_decode(as_std(*value));
    if (!raw_name || !raw_value) return std::nullopt;
    headers.add(std::move(*raw_name), std::move(*raw_value));
  }
  return headers;
}

std::optional<Message> decode_envelope(std::string_view data) {
  const auto o = parse_object(data);
  if (!o) return std::nullopt;
  const bool id_base64 = o->contains("id_base64");
  auto id = string_member(*o, id_base64 ? "id_base64" : "id", id_base64, std::string());
  const bool headers_base64 = o->contains("headers_base64");
  auto headers = headers_member(*o, headers_base64 ? "headers_base64" : "headers", headers_base64);
  const bool payload_base64 = o->contains("payload_base64");
  auto payload = string_member(*o, payload_base64 ? "payload_base64" : "payload", payload_base64, std::string());
  if (!id || !headers || !payload) return std::nullopt;
  Message msg(Bytes(std::move(*payload)));
  msg.id = std::move(*id);
  msg.headers = std::move(*headers);
  return msg;
}

constexpr char base64_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

constexpr std::array<signed char, 256> base64_values = [] {
  std::array<signed char, 256> values{};
  values.fill(-1);
  for (int i = 0; i < 64; ++i) values[static_cast<unsigned char>(base64_alphabet[i])] = static_cast<signed char>(i);
  return values;
}();

}  // namespace

bool is_text(std::string_view payload) noexcept {
  return payload.find('\r') == std::string_view::npos && valid_utf8(payload);
}

std::string encode(const Message& msg, std::string_view position, Format format) {
  const std::string_view payload = msg.payload.view();
  std::string out;
  out.reserve(payload.size() + position.size() + 32);
  if (!position.empty()) {
    out += "id: ";
    out += position;
    out += '\n';
  }
  if (format == Format::envelope) {
    out += "data: ";
    out += envelope_json(msg);
    out += "\n\n";
  } else if (is_text(payload)) {
    // One data line per LF-separated line: the parser joins them with LF again. An empty
    // payload still writes one data line, so the event is dispatched with empty data.
    std::string_view rest = payload;
    for (;;) {
      const auto lf = rest.find('\n');
      out += "data: ";
      out += rest.substr(0, lf);
      out += '\n';
      if (lf == std::string_view::npos) break;
      rest.remove_prefix(lf + 1);
    }
    out += '\n';
  } else {
    out += "event: binary\ndata: ";
    out += base64_encode(payload);
    out += "\n\n";
  }
  return out;
}

std::string encode_envelope(const Message& msg) { return envelope_json(msg); }
std::optional<Message> decode_envelope_json(std::string_view json_text) { return decode_envelope(json_text); }
std::optional<Gap> decode_gap_json(std::string_view json_text) { return decode_gap(json_text); }

std::string encode_gap_json(const Gap& gap) {
  json::object o;
  o["last_seen"] = position_to_json(gap.last_seen);
  o["resumes_at"] = position_to_json(gap.resumes_at);
  o["missed"] = gap.missed;
  o["reason"] = as_json(repaired_utf8(gap.reason));
  return json::serialize(o);
}

std::string encode_gap(const Gap& gap) {
  return "event: gap\ndata: " + encode_gap_json(gap) + "\n\n";
}

std::string encode_retry(std::uint64_t milliseconds) { return "retry: " + std::to_string(milliseconds) + "\n\n"; }

std::string encode_comment(std::string_view text) {
  std::string out = ": ";
  out += text;
  // A line end inside the text would end the comment and start a field.
  std::replace_if(out.begin(), out.end(), [](char c) { return c == '\r' || c == '\n'; }, ' ');
  out += "\n\n";
  return out;
}

std::optional<Decoded> decode(const Event& event, bool envelope) {
  Decoded decoded;
  if (event.type == "gap") {
    decoded.gap = decode_gap(event.data);
    if (!decoded.gap) return std::nullopt;
  } else if (event.type == "binary") {
    auto bytes = base64_decode(event.data);
    if (!bytes) return std::nullopt;
    decoded.message.emplace(Bytes(std::move(*bytes)));
  } else if (event.type == "message") {
    if (envelope) {
      decoded.message = decode_envelope(event.data);
      if (!decoded.message) return std::nullopt;
    } else {
      decoded.message.emplace(std::string_view(event.data));
    }
  } else {
    decoded.message.emplace(std::string_view(event.data));
    decoded.message->headers.add("sse-event", event.type);
  }
  return decoded;
}

std::string base64_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  const auto byte = [&bytes](std::size_t at) { return static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[at])); };
  for (; i + 3 <= bytes.size(); i += 3) {
    const std::uint32_t n = byte(i) << 16 | byte(i + 1) << 8 | byte(i + 2);
    out += base64_alphabet[n >> 18 & 63];
    out += base64_alphabet[n >> 12 & 63];
    out += base64_alphabet[n >> 6 & 63];
    out += base64_alphabet[n & 63];
  }
  if (const std::size_t rest = bytes.size() - i; rest > 0) {
    const std::uint32_t n = byte(i) << 16 | (rest == 2 ? byte(i + 1) << 8 : 0);
    out += base64_alphabet[n >> 18 & 63];
    out += base64_alphabet[n >> 12 & 63];
    out += rest == 2 ? base64_alphabet[n >> 6 & 63] : '=';
    out += '=';
  }
  return out;
}

// Strict: padding required, no whitespace, and the unused bits before padding must be zero, so
// that every byte sequence has exactly one accepted encoding.
std::optional<std::string> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (std::size_t i = 0; i < text.size(); i += 4) {
    const bool last = i + 4 == text.size();
    const int padding = last ? (text[i + 3] == '=') + (text[i + 2] == '=' && text[i + 3] == '=') : 0;
    std::uint32_t n = 0;
    for (int k = 0; k < 4 - padding; ++k) {
      const int v = base64_values[static_cast<unsigned char>(text[i + k])];
      if (v < 0) return std::nullopt;
      n |= static_cast<std::uint32_t>(v) << (18 - 6 * k);
    }
    out += static_cast<char>(n >> 16 & 0xFF);
    if (padding < 2) out += static_cast<char>(n >> 8 & 0xFF);
    if (padding < 1) out += static_cast<char>(n & 0xFF);
    if ((padding == 1 && (n & 0xFF) != 0) || (padding == 2 && (n & 0xFFFF) != 0)) return std::nullopt;
  }
  return out;
}

}  // namespace patchbay::http::sse
