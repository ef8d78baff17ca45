// patchbay/features.hpp — what a transport guarantees, and `require:` checks against it.
//
// Every transport declares its Features. The conformance suite runs each scenario only where
// the declared features say it applies, and a binding may `require:` features in config: a
// transport lacking one is refused at start-up with an error naming binding, transport and
// feature. Feature names in config are the field names below.
#pragma once

#include <absl/status/status.h>

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace patchbay {

struct Features {
  bool publish_subscribe = false;  ///< Topic publish/subscribe, fan-out to every subscriber
  bool request_reply = false;      ///< Service request/serve
  bool consumer_groups = false;    ///< subscribers sharing a group split the messages
  bool at_least_once = false;      ///< ack/nack; nack(requeue) and unsettled deliveries come back
  bool ordered = false;            ///< one publisher's messages arrive in publish order
  bool replay = false;             ///< subscribe from a Position within the history
  bool gap_signal = false;         ///< a gap Delivery when history no longer reaches a position
  bool headers = false;            ///< message headers are carried
  bool flow_control = false;       ///< SubscribeOptions::max_in_flight is honoured
  bool durable = false;            ///< accepted messages survive a restart of the transport's server
  std::size_t max_payload = 0;     ///< largest payload in bytes; 0 means no limit

  /// The names usable in `require:`, in declaration order.
  static std::span<const std::string_view> names() noexcept;

  /// Whether `name` is a known feature name.
  static bool known(std::string_view name) noexcept;

  /// Whether this set has the feature `name` (false for unknown names).
  bool has(std::string_view name) const noexcept;

  /// "publish_subscribe, at_least_once, ..., max_payload=4194304" for `patchbay check`.
  std::string describe() const;
};

/// The first `required` feature that `features` lacks, or an empty view when all are there.
std::string_view first_missing(const Features& features, std::span<const std::string> required) noexcept;

}  // namespace patchbay
