// The `shortpoll` transport (see patchbay/transports/shortpoll/shortpoll.hpp and README.md):
// the polling client of transports/longpoll/src/poll_client.ipp, asking at an interval with
// conditional requests.
#include <patchbay/transports/shortpoll/shortpoll.hpp>

#define PATCHBAY_POLL_NS shortpoll_transport
#include "../../longpoll/src/poll_client.ipp"

namespace patchbay::shortpoll_transport {

namespace {

absl::StatusOr<std::shared_ptr<Transport>> make_shortpoll(const TransportContext& ctx) {
  const auto& s = ctx.settings;
  PollSettings out;
  out.type = "shortpoll";
  out.hold = false;
  out.poll_path = "/topics/{topic}/messages";
  PB_TRY(read_common(s, "messages_path", out));
  PB_TRY(read_duration(s, "interval", out.interval));
  if (out.interval <= duration::zero()) {
    return config::error_at(s.mark_of("interval"), s.context() + ": interval must be positive");
  }
  PB_TRY(take(s.get_double("jitter", out.jitter), out.jitter));
  if (!(out.jitter >= 0.0 && out.jitter <= 1.0)) {
    return config::error_at(s.mark_of("jitter"), s.context() + ": jitter must be a fraction from 0 to 1");
  }
  PB_TRY(take(s.get_bool("conditional", true), out.conditional));
  return std::shared_ptr<Transport>(std::make_shared<PollTransport>(ctx.ex, std::move(out)));
}

absl::Status register_shortpoll(Registry& registry) { return registry.add_transport("shortpoll", make_shortpoll); }

}  // namespace

std::optional<Stats> stats(const Transport& transport) {
  const auto* t = dynamic_cast<const PollTransport*>(&transport);
  if (!t) return std::nullopt;
  const auto& c = t->counters();
  return Stats{c.requests.load(), c.answers.load(), c.not_modified.load(), c.errors.load(), c.messages.load(), c.gaps.load()};
}

#ifndef PATCHBAY_BUILDING_MODULE
absl::Status register_transport(Registry& registry) { return register_shortpoll(registry); }
#endif

}  // namespace patchbay::shortpoll_transport

#ifdef PATCHBAY_BUILDING_MODULE
PATCHBAY_PLUGIN(patchbay::shortpoll_transport::register_shortpoll)
#endif
