// patchbay/bytes.hpp — an immutable, reference-counted byte buffer.
//
// Bytes is the payload type of every Message. Copying a Bytes copies a pointer, never the
// bytes, so fanning one message out to N subscribers copies no payload. The content is
// fixed at construction; any byte sequence is allowed, including NUL bytes and the empty
// sequence.
//
// Thread safety: distinct objects may be used concurrently; one object may be read (and
// copied) concurrently from several threads, like std::shared_ptr<const T>.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace patchbay {

class Bytes {
 public:
  /// The empty payload. Allocates nothing.
  Bytes() noexcept = default;

  /// Takes ownership of `s` (moved, not copied).
  explicit Bytes(std::string s)
      : data_(s.empty() ? nullptr : std::make_shared<const std::string>(std::move(s))) {}  // empty: no allocation
  explicit Bytes(std::string_view s) : Bytes(std::string(s)) {}
  explicit Bytes(const char* s) : Bytes(std::string(s)) {}
  explicit Bytes(std::span<const std::byte> s)
      : Bytes(std::string(reinterpret_cast<const char*>(s.data()), s.size())) {}

  std::size_t size() const noexcept { return data_ ? data_->size() : 0; }
  bool empty() const noexcept { return size() == 0; }
  const char* data() const noexcept { return data_ ? data_->data() : ""; }

  std::string_view view() const noexcept { return data_ ? std::string_view(*data_) : std::string_view(); }
  std::span<const std::byte> span() const noexcept {
    return {reinterpret_cast<const std::byte*>(data()), size()};
  }
  std::string str() const { return std::string(view()); }

  /// True when both share one buffer (a cheap identity test; not content equality).
  bool shares_buffer_with(const Bytes& other) const noexcept { return data_ == other.data_ && data_; }

  /// Content equality.
  friend bool operator==(const Bytes& a, const Bytes& b) noexcept { return a.view() == b.view(); }

 private:
  std::shared_ptr<const std::string> data_;
};

}  // namespace patchbay
