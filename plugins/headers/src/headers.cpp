// The `headers` middleware (see the header): stamps configured headers on outgoing messages.
#include <patchbay/plugins/headers/headers.hpp>

#include <patchbay/middleware.hpp>
#include <patchbay/plugin.hpp>

#include <yaml-cpp/yaml.h>

#include <utility>
#include <vector>

namespace patchbay::plugins::headers {
namespace {

class HeadersMiddleware final : public Middleware {
 public:
  HeadersMiddleware(std::shared_ptr<Transport> inner, std::vector<std::pair<std::string, std::string>> set, bool overwrite)
      : Middleware(std::move(inner)), set_(std::move(set)), overwrite_(overwrite) {}

 protected:
  awaitable<void> do_publish(Message msg) override {
    stamp(msg);
    return inner()->publish(std::move(msg));
  }
  awaitable<Message> do_request(std::string service, Message msg, deadline until) override {
    stamp(msg);
    return inner()->request(std::move(service), std::move(msg), until);
  }

 private:
  void stamp(Message& msg) const {
    for (const auto& [name, value] : set_) {
      if (overwrite_)
        msg.headers.set(name, value);
      else if (!msg.headers.contains(name))
        msg.headers.add(name, value);
    }
  }

  std::vector<std::pair<std::string, std::string>> set_;
  bool overwrite_;
};

absl::StatusOr<std::shared_ptr<Transport>> make_headers(const MiddlewareContext& ctx) {
  const auto& s = ctx.settings;
  auto overwrite = s.get_bool("overwrite", false);
  if (!overwrite.ok()) return overwrite.status();
  auto set = s.get_map("set");
  if (!set.ok()) return set.status();
  std::vector<std::pair<std::string, std::string>> headers;
  for (const auto& entry : set->yaml()) {
    if (!entry.first.IsScalar())
      return config::error_at(set->mark(), s.context() + ": header names under `set:` must be plain strings");
    const std::string name = entry.first.Scalar();
    if (name.empty() || name.find_first_of(" \t\r\n:") != std::string::npos)
      return config::error_at(set->mark_of(name), s.context() + ": '" + name + "' is not a valid header name");
    auto value = set->get_string(name, "");
    if (!value.ok()) return value.status();
    headers.emplace_back(name, *value);
  }
  if (headers.empty())
    return config::error_at(s.mark(), s.context() + ": `set:` names no header; add e.g. `set: { x-env: prod }` or remove the middleware");
  return std::make_shared<HeadersMiddleware>(ctx.inner, std::move(headers), *overwrite);
}

absl::Status register_headers(Registry& registry) { return registry.add_middleware("headers", make_headers); }

}  // namespace

#ifndef PATCHBAY_BUILDING_MODULE
absl::Status register_middleware(Registry& registry) { return register_headers(registry); }
#endif

}  // namespace patchbay::plugins::headers

#ifdef PATCHBAY_BUILDING_MODULE
PATCHBAY_PLUGIN(patchbay::plugins::headers::register_headers)
#endif
