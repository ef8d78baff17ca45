// Message headers ↔ HTTP header fields (see patchbay/http/message_fields.hpp).
#include <patchbay/http/message_fields.hpp>

#include <patchbay/error.hpp>

#include <boost/beast/core/string.hpp>

namespace patchbay::http {

bool is_hop_by_hop(std::string_view name) noexcept {
  static constexpr std::string_view kFields[] = {"host",       "connection", "content-length", "transfer-encoding",
                                                 "keep-alive", "te",         "trailer",        "upgrade",
                                                 "expect",     "proxy-connection"};
  for (auto f : kFields) {
    if (boost::beast::iequals(name, f)) return true;
  }
  return false;
}

void put_message_headers(const Message& msg, boost::beast::http::fields& fields) {
  for (const auto& [name, value] : msg.headers) {
    if (name.empty() || is_hop_by_hop(name) || boost::beast::iequals(name, kMessageIdField) ||
        name.find_first_of(" \t\r\n:()<>@,;\\\"/[]?={}") != std::string::npos ||
        value.find_first_of("\r\n") != std::string::npos || value.find('\0') != std::string::npos ||
        (!value.empty() && (value.front() == ' ' || value.front() == '\t' || value.back() == ' ' || value.back() == '\t'))) {
      throw_error(errc::bad_message, "header '" + name + "' cannot travel as an HTTP header field");
    }
    fields.insert(name, value);
  }
  if (!msg.id.empty()) fields.set(kMessageIdField, msg.id);
}

void take_message_headers(const boost::beast::http::fields& fields, Message& msg,
                          std::initializer_list<std::string_view> skip) {
  for (const auto& field : fields) {
    auto n = field.name_string();
    const std::string_view name(n.data(), n.size());
    auto v = field.value();
    if (boost::beast::iequals(name, kMessageIdField)) {
      msg.id.assign(v.data(), v.size());
      continue;
    }
    if (is_hop_by_hop(name)) continue;
    bool skipped = false;
    for (auto s : skip) skipped = skipped || boost::beast::iequals(name, s);
    if (!skipped) msg.headers.add(std::string(name), std::string(v.data(), v.size()));
  }
}

}  // namespace patchbay::http
