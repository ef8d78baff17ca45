// Feature names for `require:` and `patchbay check`.
#include <patchbay/features.hpp>


#include <array>

namespace patchbay {
namespace {

constexpr std::array<std::string_view, 10> kNames = {
    "publish_subscribe", "request_reply", "consumer_groups", "at_least_once", "ordered",
    "replay",            "gap_signal",    "headers",         "flow_control",  "durable"};

const bool* field(const Features& f, std::string_view name) noexcept {
  if (name == "publish_subscribe") return &f.publish_subscribe;
  if (name == "request_reply") return &f.request_reply;
  if (name == "consumer_groups") return &f.consumer_groups;
  if (name == "at_least_once") return &f.at_least_once;
  if (name == "ordered") return &f.ordered;
  if (name == "replay") return &f.replay;
  if (name == "gap_signal") return &f.gap_signal;
  if (name == "headers") return &f.headers;
  if (name == "flow_control") return &f.flow_control;
  if (name == "durable") return &f.durable;
  return nullptr;
}

}  // namespace

std::span<const std::string_view> Features::names() noexcept { return kNames; }

bool Features::known(std::string_view name) noexcept { return field(Features{}, name) != nullptr; }

bool Features::has(std::string_view name) const noexcept {
  const bool* f = field(*this, name);
  return f && *f;
}

std::string Features::describe() const {
  // Abseil here has its own string_view type, so join by hand.
  std::string out;
  for (auto n : kNames) {
    if (!has(n)) continue;
    out.append(n).append(", ");
  }
  out.append("max_payload=").append(max_payload == 0 ? std::string("unlimited") : std::to_string(max_payload));
  return out;
}

std::string_view first_missing(const Features& features, std::span<const std::string> required) noexcept {
  for (const auto& r : required)
    if (!features.has(r)) return r;
  return {};
}

}  // namespace patchbay
