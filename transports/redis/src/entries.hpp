// Stream entries as Redis returns them (XREAD, XREADGROUP, XAUTOCLAIM, XRANGE), turned into
// patchbay messages. Internal to the redis transport; its own file so that the fuzz target
// exercises the same code on arbitrary replies.
//
// An entry written by patchbay has the fields `patchbay-id`, `patchbay-time` (ms since the
// epoch), `header:<name>` (one per header, in order) and `payload`. Any other field (an entry
// written by another client) becomes a header of that name. Malformed replies yield no entries,
// never an exception.
#pragma once

#include <patchbay/message.hpp>
#include <patchbay/transports/redis/resp.hpp>

#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace patchbay::redis::detail {

/// A stream entry id, "<ms>-<seq>".
struct EntryId {
  std::uint64_t ms = 0, seq = 0;
  auto operator<=>(const EntryId&) const = default;
};

std::optional<EntryId> parse_id(std::string_view s);

inline constexpr std::string_view kPayloadField = "payload";
inline constexpr std::string_view kIdField = "patchbay-id";
inline constexpr std::string_view kTimeField = "patchbay-time";
inline constexpr std::string_view kHeaderPrefix = "header:";

/// One stream entry read back: its id and the message it carries.
struct Entry {
  std::string id;
  Message message;
  bool redelivered = false;
};

/// The message in one entry ([id, [field, value, ...]]); std::nullopt for a deleted or
/// malformed entry. Moves strings out of `r`.
std::optional<Entry> entry_from(Reply& r, const std::string& topic);

/// The entries of a list of entries (XRANGE, XAUTOCLAIM's second element).
std::vector<Entry> entries_from(Reply& list, const std::string& topic);

/// The entries of an XREAD / XREADGROUP reply ([[key, [entry, ...]]] or nil).
std::vector<Entry> read_reply_entries(Reply& reply, const std::string& topic);

/// Ids of deleted entries (nil fields) in an own-pending XREADGROUP reply.
std::vector<std::string> deleted_ids(const Reply& reply);

}  // namespace patchbay::redis::detail
