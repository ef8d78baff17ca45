// patchbay/delivery.hpp — a received message and the decision about it.
//
// A subscription yields Deliveries. Each carries the message, its Position and whether it
// was delivered before (`redelivered()`). On transports that declare `at_least_once`, the
// application settles each delivery exactly once:
//   - `ack()`             the message is processed; it will not be delivered again;
//   - `nack(true)`        processing failed; deliver it again (possibly to another member
//                         of the consumer group), with `redelivered()` set;
//   - `nack(false)`       give up on it; the transport dead-letters or drops it (see its README).
// The first decision wins; later calls are ignored. A Delivery destroyed without a decision
// is nacked with requeue, so a consumer that throws never loses a message.
//
// A gap Delivery (`is_gap()`) carries no message: it says that messages between the last
// position the subscriber saw and the next delivery are gone (history trimmed, a slow
// subscriber overtaken, a broker reconnect on an at-most-once wire). It needs no settling.
//
// Thread safety: a Delivery is owned by one consumer at a time; ack/nack may be called from
// any thread.
#pragma once

#include <patchbay/message.hpp>
#include <patchbay/position.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace patchbay {

/// What a gap Delivery reports.
struct Gap {
  Position last_seen;       ///< the last position the subscriber had (empty if none)
  Position resumes_at;      ///< the position of the next message it will receive (if known)
  std::uint64_t missed = 0; ///< how many messages are gone; 0 when the transport cannot tell
  std::string reason;       ///< "history trimmed", "slow subscriber", "epoch changed", ...
};

/// Settles deliveries for a transport. One instance usually serves a whole subscription;
/// `tag` identifies the delivery within it. Implementations must be thread-safe.
class Acknowledger {
 public:
  virtual ~Acknowledger() = default;
  virtual void ack(std::uint64_t tag) noexcept = 0;
  virtual void nack(std::uint64_t tag, bool requeue) noexcept = 0;
};

class Delivery {
 public:
  Delivery() = default;
  Delivery(Message msg, Position pos, bool redelivered, std::shared_ptr<Acknowledger> acker, std::uint64_t tag)
      : message_(std::move(msg)), position_(std::move(pos)), acker_(std::move(acker)), tag_(tag),
        redelivered_(redelivered) {}

  /// A delivery that carries no settlement duty (at-most-once transports).
  Delivery(Message msg, Position pos) : message_(std::move(msg)), position_(std::move(pos)) {}

  static Delivery gap(Gap g) {
    Delivery d;
    d.gap_ = std::make_unique<Gap>(std::move(g));
    return d;
  }

  Delivery(Delivery&& other) noexcept = default;
  Delivery& operator=(Delivery&& other) noexcept {
    if (this != &other) {
      settle_default();
      message_ = std::move(other.message_);
      position_ = std::move(other.position_);
      acker_ = std::move(other.acker_);
      tag_ = other.tag_;
      redelivered_ = other.redelivered_;
      gap_ = std::move(other.gap_);
    }
    return *this;
  }
  Delivery(const Delivery&) = delete;
  Delivery& operator=(const Delivery&) = delete;
  ~Delivery() { settle_default(); }

  bool is_gap() const noexcept { return gap_ != nullptr; }
  const Gap& gap() const noexcept { return *gap_; }

  const Message& message() const noexcept { return message_; }
  Message& message() noexcept { return message_; }
  const Position& position() const noexcept { return position_; }
  bool redelivered() const noexcept { return redelivered_; }

  /// True once ack() or nack() was called, or when there is nothing to settle.
  bool settled() const noexcept { return acker_ == nullptr; }

  void ack() noexcept {
    if (auto a = std::move(acker_)) a->ack(tag_);
  }
  void nack(bool requeue = true) noexcept {
    if (auto a = std::move(acker_)) a->nack(tag_, requeue);
  }

 private:
  void settle_default() noexcept { nack(true); }

  Message message_;
  Position position_;
  std::shared_ptr<Acknowledger> acker_;
  std::uint64_t tag_ = 0;
  bool redelivered_ = false;
  std::unique_ptr<Gap> gap_;
};

}  // namespace patchbay
