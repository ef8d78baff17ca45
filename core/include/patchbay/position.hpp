// patchbay/position.hpp — where a subscription starts, and where a delivery sits.
//
// A Position is a transport's resume point: an SSE event id, a stream offset, a cursor. Its
// token is opaque to applications: store it (for example in a database next to the effect
// of processing the message) and pass `Position::after(token)` to a later subscribe to
// resume exactly after that message. Tokens are stable strings, safe to persist.
//
// If the transport's history no longer reaches a position (it was trimmed, or the history
// was reset and its epoch changed), the subscription yields a gap Delivery first and then
// continues from the oldest message it still has; it never skips silently.
#pragma once

#include <string>
#include <string_view>

namespace patchbay {

class Position {
 public:
  enum class kind { latest, earliest, after };

  /// Only messages published after the subscription is established (the default).
  static Position latest() { return Position(kind::latest, {}); }
  /// From the oldest message the transport still holds.
  static Position earliest() { return Position(kind::earliest, {}); }
  /// Resume right after the message at `token` (a delivery's `position().token()`).
  static Position after(std::string token) { return Position(kind::after, std::move(token)); }

  /// Parses the text form used on the command line: "latest", "earliest" or a token.
  static Position parse(std::string_view text);

  Position() = default;

  kind where() const noexcept { return kind_; }
  const std::string& token() const noexcept { return token_; }
  bool empty() const noexcept { return kind_ != kind::after; }

  /// "latest", "earliest" or the token.
  std::string to_string() const;

  friend bool operator==(const Position&, const Position&) = default;

 private:
  Position(kind k, std::string t) : kind_(k), token_(std::move(t)) {}
  kind kind_ = kind::latest;
  std::string token_;
};

}  // namespace patchbay
