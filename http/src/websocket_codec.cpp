// The JSON frames of the hub's WebSocket endpoint (see patchbay/http/websocket.hpp).
#include <patchbay/http/websocket.hpp>

#include <patchbay/http/sse.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

namespace patchbay::http::websocket {

namespace {

namespace json = boost::json;

std::string quoted(std::string_view s) { return json::serialize(json::value(json::string(s))); }

/// `head` followed by the members of the JSON object `object` ("{...}").
std::string splice(std::string head, std::string_view object) {
  // object is "{}" or "{<members>}"
  if (object.size() > 2) {
    head += ',';
    head.append(object.substr(1));
  } else {
    head += '}';
  }
  return head;
}

const json::string* string_member(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end()) return nullptr;
  return it->value().if_string();
}

}  // namespace

std::string encode_message(const Message& msg, std::string_view position) {
  std::string head = "{\"type\":\"message\",\"position\":";
  head += quoted(position);
  return splice(std::move(head), sse::encode_envelope(msg));
}

std::string encode_gap(const Gap& gap) { return splice("{\"type\":\"gap\"", sse::encode_gap_json(gap)); }

std::string encode_published(std::string_view id, std::string_view position) {
  std::string out = "{\"type\":\"published\",\"id\":" + quoted(id);
  if (!position.empty()) out += ",\"position\":" + quoted(position);
  out += '}';
  return out;
}

std::string encode_error(std::string_view id, std::string_view error) {
  std::string out = "{\"type\":\"error\"";
  if (!id.empty()) out += ",\"id\":" + quoted(id);
  out += ",\"error\":" + quoted(error) + "}";
  return out;
}

std::string encode_publish(const Message& msg) { return splice("{\"type\":\"publish\"", sse::encode_envelope(msg)); }

std::optional<Frame> decode(std::string_view text) {
  json::error_code ec;
  json::value v = json::parse(json::string_view(text.data(), text.size()), ec);
  if (ec || !v.is_object()) return std::nullopt;
  const auto& o = v.get_object();
  const auto* type = string_member(o, "type");
  if (!type) return std::nullopt;
  Frame f;
  f.type_name = std::string(type->data(), type->size());
  if (f.type_name == "message" || f.type_name == "publish") {
    f.type = f.type_name == "message" ? Frame::Type::message : Frame::Type::publish;
    f.message = sse::decode_envelope_json(text);
    if (!f.message) return std::nullopt;
    if (f.type == Frame::Type::message) {
      const auto* p = string_member(o, "position");
      if (!p) return std::nullopt;
      f.position = std::string(p->data(), p->size());
    }
  } else if (f.type_name == "gap") {
    f.type = Frame::Type::gap;
    f.gap = sse::decode_gap_json(text);
    if (!f.gap) return std::nullopt;
  } else if (f.type_name == "published" || f.type_name == "error") {
    f.type = f.type_name == "published" ? Frame::Type::published : Frame::Type::error;
    if (const auto* id = string_member(o, "id")) f.id = std::string(id->data(), id->size());
    if (const auto* p = string_member(o, "position")) f.position = std::string(p->data(), p->size());
    if (const auto* e = string_member(o, "error")) f.error = std::string(e->data(), e->size());
  }
  return f;
}

}  // namespace patchbay::http::websocket
