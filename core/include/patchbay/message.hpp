// patchbay/message.hpp — the unit every transport carries.
//
// A Message is a value type: topic, id, headers, payload and time. Copying a Message copies
// the small fields but never the payload bytes (see Bytes). `Topic::publish` fills an empty
// `id` with a fresh unique id and an unset `time` with the current time; transports carry
// the id end to end, so that an at-least-once duplicate is recognisable by it.
#pragma once

#include <patchbay/bytes.hpp>
#include <patchbay/headers.hpp>

#include <chrono>
#include <string>

namespace patchbay {

struct Message {
  using time_point = std::chrono::system_clock::time_point;

  std::string topic;    ///< the wire topic or service name; set by Topic/Service handles
  std::string id;       ///< unique; generated when empty at publish time
  Headers headers;      ///< ordered string pairs
  Bytes payload;        ///< immutable, shared bytes
  time_point time{};    ///< when it was published; set at publish time when unset

  Message() = default;
  explicit Message(Bytes body) : payload(std::move(body)) {}
  explicit Message(std::string_view body) : payload(body) {}

  /// A new 128-bit random id as 32 lowercase hex digits. Thread-safe.
  static std::string generate_id();

  /// Fills `id` and `time` when they are empty.
  void stamp();
};

}  // namespace patchbay
