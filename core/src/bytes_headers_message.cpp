// Out-of-line parts of Headers, Message and Position.
#include <patchbay/headers.hpp>
#include <patchbay/message.hpp>
#include <patchbay/position.hpp>

#include <algorithm>
#include <array>
#include <cstring>
#include <atomic>
#include <cstdio>
#include <random>

namespace patchbay {

void Headers::set(std::string_view name, std::string value) {
  auto first = std::find_if(items_.begin(), items_.end(), [&](const value_type& h) { return h.first == name; });
  if (first == items_.end()) {
    items_.emplace_back(std::string(name), std::move(value));
    return;
  }
  first->second = std::move(value);
  items_.erase(std::remove_if(std::next(first), items_.end(), [&](const value_type& h) { return h.first == name; }),
               items_.end());
}

std::size_t Headers::remove(std::string_view name) {
  auto before = items_.size();
  items_.erase(std::remove_if(items_.begin(), items_.end(), [&](const value_type& h) { return h.first == name; }),
               items_.end());
  return before - items_.size();
}

std::optional<std::string_view> Headers::get(std::string_view name) const noexcept {
  for (const auto& h : items_)
    if (h.first == name) return std::string_view(h.second);
  return std::nullopt;
}

std::vector<std::string_view> Headers::get_all(std::string_view name) const {
  std::vector<std::string_view> out;
  for (const auto& h : items_)
    if (h.first == name) out.emplace_back(h.second);
  return out;
}

std::string Message::generate_id() {
  // A per-thread generator seeded from the OS: no lock on the publish path. Formatted by hand:
  // snprintf cost more than the rest of a request's id handling together.
  thread_local std::mt19937_64 gen([] {
    std::random_device rd;
    std::seed_seq seq{rd(), rd(), rd(), rd()};
    return std::mt19937_64(seq);
  }());
  // Two hex digits per table lookup.
  static constexpr auto pairs = [] {
    std::array<char, 512> t{};
    constexpr char hex[] = "0123456789abcdef";
    for (int b = 0; b < 256; ++b) {
      t[static_cast<std::size_t>(2 * b)] = hex[b >> 4];
      t[static_cast<std::size_t>(2 * b + 1)] = hex[b & 0xf];
    }
    return t;
  }();
  std::string out(32, '\0');
  char* p = out.data();
  for (int half = 0; half < 2; ++half) {
    auto v = gen();
    for (int i = 7; i >= 0; --i, v >>= 8) std::memcpy(p + half * 16 + i * 2, &pairs[(v & 0xff) * 2], 2);
  }
  return out;
}

void Message::stamp() {
  if (id.empty()) id = generate_id();
  if (time == time_point{}) time = std::chrono::system_clock::now();
}

Position Position::parse(std::string_view text) {
  if (text == "latest" || text.empty()) return latest();
  if (text == "earliest") return earliest();
  return after(std::string(text));
}

std::string Position::to_string() const {
  switch (kind_) {
    case kind::latest: return "latest";
    case kind::earliest: return "earliest";
    case kind::after: return token_;
  }
  return token_;
}

}  // namespace patchbay
