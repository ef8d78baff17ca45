// patchbay/headers.hpp — ordered message headers.
//
// Headers are an ordered list of (name, value) string pairs. Order is preserved and names may
// repeat (as in HTTP and AMQP tables); lookups compare names exactly (case-sensitive), since
// not every wire folds case. Transports that cannot carry headers natively (Redis Pub/Sub,
// ZeroMQ) carry them in an envelope; see each transport's README for the names it reserves.
// Header names starting with `patchbay-` are reserved for the framework.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace patchbay {

class Headers {
 public:
  using value_type = std::pair<std::string, std::string>;
  using const_iterator = std::vector<value_type>::const_iterator;

  Headers() = default;
  Headers(std::initializer_list<value_type> init) : items_(init) {}

  /// Appends a header, keeping any existing one with the same name.
  void add(std::string name, std::string value) { items_.emplace_back(std::move(name), std::move(value)); }

  /// Replaces every header named `name` with one (appended if absent, in place otherwise).
  void set(std::string_view name, std::string value);

  /// Removes every header named `name`; returns how many were removed.
  std::size_t remove(std::string_view name);

  /// The first value for `name`.
  std::optional<std::string_view> get(std::string_view name) const noexcept;
  std::vector<std::string_view> get_all(std::string_view name) const;
  bool contains(std::string_view name) const noexcept { return get(name).has_value(); }

  std::size_t size() const noexcept { return items_.size(); }
  void reserve(std::size_t n) { items_.reserve(n); }
  bool empty() const noexcept { return items_.empty(); }
  const_iterator begin() const noexcept { return items_.begin(); }
  const_iterator end() const noexcept { return items_.end(); }

  friend bool operator==(const Headers&, const Headers&) = default;

 private:
  std::vector<value_type> items_;
};

}  // namespace patchbay
