// The zmq wire format; see wire.hpp.
#include "wire.hpp"

#include <charconv>
#include <cstring>

namespace patchbay::zeromq::wire {

zmq::message_t header_frame(std::string_view name, std::string_view value) {
  zmq::message_t m(name.size() + 1 + value.size());
  char* p = static_cast<char*>(m.data());
  std::memcpy(p, name.data(), name.size());
  p[name.size()] = '\0';
  if (!value.empty()) std::memcpy(p + name.size() + 1, value.data(), value.size());
  return m;
}

namespace {
constexpr std::size_t zero_copy_threshold = 8 * 1024;

void release_bytes(void*, void* hint) noexcept { delete static_cast<Bytes*>(hint); }
}  // namespace

zmq::message_t payload_frame(const Bytes& payload) {
  if (payload.size() < zero_copy_threshold) return zmq::message_t(payload.data(), payload.size());
  auto* keep = new Bytes(payload);
  // zmq frees the frame from its I/O thread: the Bytes copy keeps the buffer alive until then.
  return zmq::message_t(const_cast<char*>(keep->data()), keep->size(), release_bytes, keep);
}

void append_headers(const Message& msg, std::vector<zmq::message_t>& frames) {
  if (!msg.id.empty()) frames.push_back(header_frame(id_header, msg.id));
  if (msg.time != Message::time_point{}) {
    char buf[24];
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(msg.time.time_since_epoch()).count();
    auto r = std::to_chars(buf, buf + sizeof buf, static_cast<long long>(ns));
    frames.push_back(header_frame(time_header, std::string_view(buf, r.ptr - buf)));
  }
  for (const auto& [name, value] : msg.headers) frames.push_back(header_frame(name, value));
}

std::optional<std::string> invalid_header(const Headers& headers) {
  for (const auto& [name, value] : headers) {
    if (name.empty() || name.find('\0') != std::string::npos || name == id_header || name == time_header)
      return name;
  }
  return std::nullopt;
}

bool parse_body(std::vector<zmq::message_t>& frames, std::size_t first, Message& out) {
  if (frames.size() < first + 1) return false;
  const std::size_t last = frames.size() - 1;  // the payload
  for (std::size_t i = first; i < last; ++i) {
    const std::string_view f = view(frames[i]);
    const auto nul = f.find('\0');
    if (nul == std::string_view::npos || nul == 0) return false;
    const std::string_view name = f.substr(0, nul);
    const std::string_view value = f.substr(nul + 1);
    if (name == id_header) {
      out.id.assign(value);
    } else if (name == time_header) {
      long long ns = 0;
      auto r = std::from_chars(value.data(), value.data() + value.size(), ns);
      if (r.ec != std::errc{} || r.ptr != value.data() + value.size()) return false;
      out.time = Message::time_point(std::chrono::duration_cast<Message::time_point::duration>(std::chrono::nanoseconds(ns)));
    } else {
      out.headers.add(std::string(name), std::string(value));
    }
  }
  const zmq::message_t& p = frames[last];
  out.payload = p.size() == 0 ? Bytes() : Bytes(std::string(static_cast<const char*>(p.data()), p.size()));
  return true;
}

bool recv_multipart(zmq::socket_t& socket, std::vector<zmq::message_t>& frames) {
  frames.clear();
  zmq::message_t first;
  if (!socket.recv(first, zmq::recv_flags::dontwait)) return false;
  bool more = first.more();
  frames.push_back(std::move(first));
  while (more) {
    zmq::message_t part;
    // The rest of a multipart message is delivered atomically with its first part.
    if (!socket.recv(part, zmq::recv_flags::dontwait)) break;
    more = part.more();
    frames.push_back(std::move(part));
  }
  return true;
}

bool send_multipart(zmq::socket_t& socket, std::vector<zmq::message_t>& frames) {
  const std::size_t n = frames.size();
  for (std::size_t i = 0; i < n; ++i) {
    const auto flags = i + 1 < n ? (zmq::send_flags::dontwait | zmq::send_flags::sndmore) : zmq::send_flags::dontwait;
    if (!socket.send(frames[i], flags)) {
      if (i == 0) return false;
      // Cannot happen: zmq accepts the rest of a message whose first part it took.
      throw zmq::error_t();
    }
  }
  return true;
}

}  // namespace patchbay::zeromq::wire
