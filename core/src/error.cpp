// patchbay's error category.
#include <patchbay/error.hpp>

namespace patchbay {
namespace {

class category final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "patchbay"; }
  std::string message(int value) const override {
    switch (static_cast<errc>(value)) {
      case errc::ok: return "success";
      case errc::timed_out: return "deadline passed";
      case errc::no_responders: return "nobody serves this service";
      case errc::stopped: return "transport is stopping or stopped";
      case errc::closed: return "closed";
      case errc::payload_too_large: return "payload larger than the transport's max_payload";
      case errc::not_supported: return "not supported by this transport";
      case errc::remote_error: return "the serving side failed";
      case errc::bad_message: return "malformed message";
      case errc::unavailable: return "peer or broker unavailable";
    }
    return "unknown patchbay error";
  }
};

}  // namespace

const boost::system::error_category& error_category() noexcept {
  static const category instance;
  return instance;
}

void throw_error(errc e, const std::string& what) {
  if (what.empty()) throw boost::system::system_error(make_error_code(e));
  throw boost::system::system_error(make_error_code(e), what);
}

}  // namespace patchbay
