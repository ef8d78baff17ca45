// The `longpoll` transport (see patchbay/transports/longpoll/longpoll.hpp and README.md): the
// polling client of poll_client.ipp, holding each request up to `wait` on the hub.
#include <patchbay/transports/longpoll/longpoll.hpp>

#define PATCHBAY_POLL_NS longpoll_transport
#include "poll_client.ipp"

namespace patchbay::longpoll_transport {

namespace {

absl::StatusOr<std::shared_ptr<Transport>> make_longpoll(const TransportContext& ctx) {
  const auto& s = ctx.settings;
  PollSettings out;
  out.type = "longpoll";
  out.hold = true;
  out.poll_path = "/topics/{topic}/poll";
  PB_TRY(read_common(s, "poll_path", out));
  PB_TRY(read_duration(s, "wait", out.wait));
  if (out.wait < duration::zero()) return config::error_at(s.mark_of("wait"), s.context() + ": wait must not be negative");
  return std::shared_ptr<Transport>(std::make_shared<PollTransport>(ctx.ex, std::move(out)));
}

absl::Status register_longpoll(Registry& registry) { return registry.add_transport("longpoll", make_longpoll); }

}  // namespace

std::optional<Stats> stats(const Transport& transport) {
  const auto* t = dynamic_cast<const PollTransport*>(&transport);
  if (!t) return std::nullopt;
  const auto& c = t->counters();
  return Stats{c.requests.load(), c.answers.load(), c.not_modified.load(), c.errors.load(), c.messages.load(), c.gaps.load()};
}

#ifndef PATCHBAY_BUILDING_MODULE
absl::Status register_transport(Registry& registry) { return register_longpoll(registry); }
#endif

}  // namespace patchbay::longpoll_transport

#ifdef PATCHBAY_BUILDING_MODULE
PATCHBAY_PLUGIN(patchbay::longpoll_transport::register_longpoll)
#endif
