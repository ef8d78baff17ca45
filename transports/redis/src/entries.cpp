// Stream entries → messages (see entries.hpp).
#include "entries.hpp"

#include <patchbay/transports/redis/envelope.hpp>

#include <climits>
#include <charconv>
#include <chrono>

namespace patchbay::redis::detail {

// --- stream entry ids ---------------------------------------------------------------------

std::optional<EntryId> parse_id(std::string_view s) {
  auto dash = s.find('-');
  if (dash == std::string_view::npos) return std::nullopt;
  EntryId id;
  auto r1 = std::from_chars(s.data(), s.data() + dash, id.ms);
  auto r2 = std::from_chars(s.data() + dash + 1, s.data() + s.size(), id.seq);
  if (r1.ec != std::errc{} || r1.ptr != s.data() + dash || r2.ec != std::errc{} || r2.ptr != s.data() + s.size())
    return std::nullopt;
  return id;
}


/// The message in one entry ([id, [field, value, ...]]); std::nullopt for a deleted entry.
std::optional<Entry> entry_from(Reply& r, const std::string& topic) {
  if (!r.is_array() || r.elements.size() != 2 || !r.elements[0].is_string()) return std::nullopt;
  Entry e;
  e.id = std::move(r.elements[0].str);
  Reply& fields = r.elements[1];
  if (!fields.is_array()) return std::nullopt;  // nil: deleted while pending
  Message& m = e.message;
  m.topic = topic;
  for (std::size_t i = 0; i + 1 < fields.elements.size(); i += 2) {
    std::string& k = fields.elements[i].str;
    std::string& v = fields.elements[i + 1].str;
    if (k == kPayloadField) {
      m.payload = Bytes(std::move(v));
    } else if (k == kIdField) {
      m.id = std::move(v);
    } else if (k == kTimeField) {
      long long ms = 0;
      std::from_chars(v.data(), v.data() + v.size(), ms);
      m.time = time_from_ms(ms);
    } else if (k.starts_with(kHeaderPrefix)) {
      m.headers.add(k.substr(kHeaderPrefix.size()), std::move(v));
    } else {
      m.headers.add(std::move(k), std::move(v));  // an entry written by another client
    }
  }
  if (m.id.empty()) m.id = e.id;
  if (m.time == Message::time_point{}) {
    if (auto id = parse_id(e.id); id && id->ms <= static_cast<std::uint64_t>(LLONG_MAX))
      m.time = time_from_ms(static_cast<long long>(id->ms));
  }
  return e;
}

/// Entries of an XREAD / XREADGROUP reply ([[key, [entry, ...]]] or nil) or of XAUTOCLAIM's
/// second element ([entry, ...]).
std::vector<Entry> entries_from(Reply& list, const std::string& topic) {
  std::vector<Entry> out;
  if (!list.is_array()) return out;
  out.reserve(list.elements.size());
  for (auto& r : list.elements)
    if (auto e = entry_from(r, topic)) out.push_back(std::move(*e));
  return out;
}

std::vector<Entry> read_reply_entries(Reply& reply, const std::string& topic) {
  if (!reply.is_array() || reply.elements.empty()) return {};
  Reply& stream = reply.elements[0];
  if (!stream.is_array() || stream.elements.size() != 2) return {};
  return entries_from(stream.elements[1], topic);
}

/// Deleted (nil) entries in an own-pending read: their ids, to acknowledge them away.
std::vector<std::string> deleted_ids(const Reply& reply) {
  std::vector<std::string> out;
  if (!reply.is_array() || reply.elements.empty()) return out;
  const Reply& stream = reply.elements[0];
  if (!stream.is_array() || stream.elements.size() != 2 || !stream.elements[1].is_array()) return out;
  for (const auto& e : stream.elements[1].elements)
    if (e.is_array() && e.elements.size() == 2 && e.elements[1].is_nil()) out.push_back(e.elements[0].str);
  return out;
}

}  // namespace patchbay::redis::detail
