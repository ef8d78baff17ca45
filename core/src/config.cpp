// The YAML configuration: parsing with yaml-cpp, ${VAR} substitution, and strict, located
// validation (every problem names file:line:column and what to do about it).
#include <patchbay/config.hpp>

#include <patchbay/features.hpp>

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <system_error>
#include <utility>

namespace patchbay::config {

// ---------------------------------------------------------------------------------------------
// Helpers

namespace {

constexpr std::string_view kTopLevel = "top level";

Mark to_mark(const YAML::Mark& m, const std::string& file) {
  Mark out;
  out.file = file;
  if (m.line >= 0 && m.column >= 0) {
    out.line = m.line + 1;
    out.column = m.column + 1;
  }
  return out;
}

Mark mark_of_yaml(const YAML::Node& n, const std::string& file) {
  if (!n.IsDefined()) return Mark{file, 0, 0};
  return to_mark(n.Mark(), file);
}

std::string join(const std::vector<std::string>& items, std::string_view sep) {
  std::string out;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i) out.append(sep);
    out.append(items[i]);
  }
  return out;
}

std::string quote(std::string_view s) {
  std::string out = "'";
  out.append(s);
  out.append("'");
  return out;
}

/// Optimal string alignment distance (Levenshtein plus adjacent transpositions).
std::size_t edit_distance(std::string_view a, std::string_view b) {
  const std::size_t n = a.size(), m = b.size();
  std::vector<std::vector<std::size_t>> d(n + 1, std::vector<std::size_t>(m + 1));
  for (std::size_t i = 0; i <= n; ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= m; ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= n; ++i) {
    for (std::size_t j = 1; j <= m; ++j) {
      const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[n][m];
}

/// " (did you mean 'x'?)" when a candidate is within edit distance 2, else "".
template <typename Range>
std::string did_you_mean(std::string_view word, const Range& candidates) {
  std::string best;
  std::size_t best_distance = 3;
  for (const auto& c : candidates) {
    std::string_view cv(c);
    const std::size_t d = edit_distance(word, cv);
    if (d < best_distance) {
      best_distance = d;
      best = std::string(cv);
    }
  }
  if (best.empty()) return {};
  return " (did you mean " + quote(best) + "?)";
}

std::string describe_kind(const YAML::Node& v) {
  switch (v.Type()) {
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Map: return "a mapping";
    case YAML::NodeType::Null: return "nothing";
    case YAML::NodeType::Scalar: return quote(v.Scalar());
    default: return "nothing";
  }
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

std::optional<std::int64_t> parse_int(std::string_view s) {
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  if (s.empty()) return std::nullopt;
  std::int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

std::optional<double> parse_double(std::string_view s) {
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  if (s.empty()) return std::nullopt;
  double v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

/// "250ms", "5s", "2m", "1h", "1.5s" or a plain number of seconds.
std::optional<std::chrono::milliseconds> parse_duration(std::string_view s) {
  double factor = 1000.0;  // seconds by default
  std::string_view number = s;
  auto ends_with = [&](std::string_view suffix) {
    return number.size() > suffix.size() && number.substr(number.size() - suffix.size()) == suffix;
  };
  if (ends_with("ms")) {
    factor = 1.0;
    number.remove_suffix(2);
  } else if (ends_with("s")) {
    factor = 1000.0;
    number.remove_suffix(1);
  } else if (ends_with("m")) {
    factor = 60'000.0;
    number.remove_suffix(1);
  } else if (ends_with("h")) {
    factor = 3'600'000.0;
    number.remove_suffix(1);
  }
  auto v = parse_double(number);
  if (!v || *v < 0) return std::nullopt;
  const double ms = std::round(*v * factor);
  if (ms > 1e15) return std::nullopt;
  return std::chrono::milliseconds(static_cast<std::int64_t>(ms));
}

bool valid_env_name(std::string_view name) {
  if (name.empty()) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
    const bool digit = c >= '0' && c <= '9';
    if (!alpha && !(digit && i > 0)) return false;
  }
  return true;
}

/// Problems found while parsing, reported together in file order.
class Problems {
 public:
  explicit Problems(std::string file) : file_(std::move(file)) {}

  void add(const absl::Status& s) {
    if (s.ok()) return;
    // A status may hold several problems, one per line (check_unknown_keys).
    const std::string text(s.message());
    std::string_view all = text;
    while (!all.empty()) {
      const auto nl = all.find('\n');
      add_line(std::string(all.substr(0, nl)));
      if (nl == std::string_view::npos) break;
      all.remove_prefix(nl + 1);
    }
  }
  void add(const Mark& m, std::string_view what) { add(error_at(m, what)); }

  /// Further problems at this place are consequences of this one (an unset variable makes
  /// the value look wrong, too): report only the first.
  void suppress_after(const Mark& m) { suppressed_.push_back(m.str() + ":"); }

  bool empty() const { return lines_.empty(); }

  absl::Status status() const {
    if (lines_.empty()) return absl::OkStatus();
    std::vector<std::pair<std::pair<int, int>, std::string>> sorted;
    for (const auto& [key, text] : lines_) sorted.emplace_back(key, text);
    std::stable_sort(sorted.begin(), sorted.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    std::vector<std::string> out;
    for (auto& [key, text] : sorted) out.push_back(std::move(text));
    return absl::InvalidArgumentError(join(out, "\n"));
  }

 private:
  void add_line(std::string line) {
    for (const auto& p : suppressed_)
      if (line.rfind(p, 0) == 0 && std::find_if(lines_.begin(), lines_.end(), [&](const auto& l) {
                                       return l.second.rfind(p, 0) == 0;
                                     }) != lines_.end())
        return;
    for (const auto& l : lines_)
      if (l.second == line) return;
    lines_.emplace_back(place_of(line), std::move(line));
  }

  // The line and column at the start of "file:line:column: what" (0, 0 when there are none).
  std::pair<int, int> place_of(std::string_view line) const {
    const std::string prefix = file_ + ":";
    if (line.rfind(prefix, 0) != 0) return {0, 0};
    line.remove_prefix(prefix.size());
    int l = 0, c = 0;
    auto r1 = std::from_chars(line.data(), line.data() + line.size(), l);
    if (r1.ec != std::errc() || r1.ptr == line.data() + line.size() || *r1.ptr != ':') return {0, 0};
    const char* rest = r1.ptr + 1;
    auto r2 = std::from_chars(rest, line.data() + line.size(), c);
    if (r2.ec != std::errc()) return {l, 0};
    return {l, c};
  }

  std::string file_;
  std::vector<std::pair<std::pair<int, int>, std::string>> lines_;
  std::vector<std::string> suppressed_;
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// Mark, error_at, expand_env

std::string Mark::str() const {
  if (line <= 0) return file;
  return file + ":" + std::to_string(line) + ":" + std::to_string(column);
}

absl::Status error_at(const Mark& mark, std::string_view what) {
  std::string place = mark.str();
  if (place.empty()) return absl::InvalidArgumentError(std::string(what));
  return absl::InvalidArgumentError(place + ": " + std::string(what));
}

absl::StatusOr<std::string> expand_env(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  std::size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    if (c == '$' && text.substr(i, 3) == "$${") {
      out.append("${");
      i += 3;
      continue;
    }
    if (c == '$' && text.substr(i, 2) == "${") {
      const auto close = text.find('}', i + 2);
      if (close == std::string_view::npos)
        return absl::InvalidArgumentError("unterminated " + std::string(text.substr(i)) +
                                          ": close it with } (write $${ for a literal ${)");
      const std::string_view inner = text.substr(i + 2, close - i - 2);
      std::string_view name = inner;
      std::optional<std::string_view> fallback;
      if (const auto sep = inner.find(":-"); sep != std::string_view::npos) {
        name = inner.substr(0, sep);
        fallback = inner.substr(sep + 2);
      }
      if (!valid_env_name(name))
        return absl::InvalidArgumentError("invalid environment variable reference ${" + std::string(inner) +
                                          "}: write ${NAME} or ${NAME:-default} with NAME made of letters, "
                                          "digits and _ (write $${ for a literal ${)");
      const std::string name_str(name);
      const char* value = std::getenv(name_str.c_str());
      if (value != nullptr && *value != '\0') {
        out.append(value);
      } else if (fallback) {
        out.append(*fallback);
      } else if (value != nullptr) {
        // Set but empty, without a default: the empty value is what was asked for.
      } else {
        return absl::InvalidArgumentError("environment variable " + name_str + " is not set; set it or write ${" +
                                          name_str + ":-default}");
      }
      i = close + 1;
      continue;
    }
    out.push_back(c);
    ++i;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Node

struct Node::State {
  YAML::Node yaml;
  std::string file;
  std::set<std::string, std::less<>> known;
  std::map<std::string, Node, std::less<>> children;  // nested mappings handed out by get_map

  /// The key node and value node for `key`, or {} when absent.
  std::optional<std::pair<YAML::Node, YAML::Node>> find(std::string_view key) const {
    if (!yaml.IsMap()) return std::nullopt;
    for (auto it = yaml.begin(); it != yaml.end(); ++it) {
      if (it->first.IsScalar() && it->first.Scalar() == key) return std::make_pair(it->first, it->second);
    }
    return std::nullopt;
  }
};

Node::Node() : state_(std::make_shared<State>()) { state_->yaml = YAML::Node(YAML::NodeType::Map); }

Node::Node(const YAML::Node& yaml, std::string file, std::string context)
    : state_(std::make_shared<State>()), context_(std::move(context)) {
  state_->yaml = yaml;
  state_->file = std::move(file);
}

Node::~Node() = default;
Node::Node(const Node&) = default;
Node& Node::operator=(const Node&) = default;

Mark Node::mark() const { return mark_of_yaml(state_->yaml, state_->file); }

Mark Node::mark_of(std::string_view key) const {
  if (auto kv = state_->find(key)) return mark_of_yaml(kv->first, state_->file);
  return mark();
}

bool Node::has(std::string_view key) const {
  state_->known.emplace(key);
  return state_->find(key).has_value();
}

void Node::accept(std::initializer_list<std::string_view> keys) const {
  for (auto k : keys) state_->known.emplace(k);
}

const YAML::Node& Node::yaml() const { return state_->yaml; }

// The start of every typed read: records the key, gives `fallback` when it is absent or has no
// value, and otherwise names the value `v`, its place `vmark` and a `label` for messages.
#define PATCHBAY_CONFIG_LOOKUP(key)                                        \
  state_->known.emplace(key);                                              \
  auto kv = state_->find(key);                                             \
  if (!kv || kv->second.IsNull()) return fallback;                         \
  const YAML::Node& v = kv->second;                                        \
  const Mark vmark = mark_of_yaml(v, state_->file);                        \
  const std::string label = context_.empty() || context_ == kTopLevel      \
                                ? std::string(key)                         \
                                : context_ + ": " + std::string(key)

absl::StatusOr<std::string> Node::get_string(std::string_view key, std::string fallback) const {
  PATCHBAY_CONFIG_LOOKUP(key);
  if (!v.IsScalar()) return error_at(vmark, label + ": expected a string, got " + describe_kind(v));
  return v.Scalar();
}

absl::StatusOr<bool> Node::get_bool(std::string_view key, bool fallback) const {
  PATCHBAY_CONFIG_LOOKUP(key);
  if (v.IsScalar()) {
    const std::string& s = v.Scalar();
    if (iequals(s, "true") || iequals(s, "yes")) return true;
    if (iequals(s, "false") || iequals(s, "no")) return false;
  }
  return error_at(vmark, label + ": expected true or false (or yes / no), got " + describe_kind(v));
}

absl::StatusOr<std::int64_t> Node::get_int(std::string_view key, std::int64_t fallback, std::int64_t min,
                                           std::int64_t max) const {
  PATCHBAY_CONFIG_LOOKUP(key);
  std::string range;
  if (min != INT64_MIN && max != INT64_MAX)
    range = " between " + std::to_string(min) + " and " + std::to_string(max);
  else if (min != INT64_MIN)
    range = " of at least " + std::to_string(min);
  else if (max != INT64_MAX)
    range = " of at most " + std::to_string(max);
  std::optional<std::int64_t> n;
  if (v.IsScalar()) n = parse_int(v.Scalar());
  if (!n) return error_at(vmark, label + ": expected an integer" + range + ", got " + describe_kind(v));
  if (*n < min || *n > max)
    return error_at(vmark, label + ": expected an integer" + range + ", got " + std::to_string(*n));
  return *n;
}

absl::StatusOr<double> Node::get_double(std::string_view key, double fallback) const {
  PATCHBAY_CONFIG_LOOKUP(key);
  std::optional<double> d;
  if (v.IsScalar()) d = parse_double(v.Scalar());
  if (!d) return error_at(vmark, label + ": expected a number, got " + describe_kind(v));
  return *d;
}

absl::StatusOr<std::chrono::milliseconds> Node::get_duration(std::string_view key,
                                                             std::chrono::milliseconds fallback) const {
  PATCHBAY_CONFIG_LOOKUP(key);
  std::optional<std::chrono::milliseconds> d;
  if (v.IsScalar()) d = parse_duration(v.Scalar());
  if (!d)
    return error_at(vmark, label +
                               ": expected a duration such as 250ms, 5s, 2m, 1h or a number of seconds, got " +
                               describe_kind(v));
  return *d;
}

absl::StatusOr<std::vector<std::string>> Node::get_string_list(std::string_view key,
                                                               std::vector<std::string> fallback) const {
  PATCHBAY_CONFIG_LOOKUP(key);
  if (!v.IsSequence()) return error_at(vmark, label + ": expected a list of strings, got " + describe_kind(v));
  std::vector<std::string> out;
  for (const YAML::Node& item : v) {
    if (!item.IsScalar())
      return error_at(mark_of_yaml(item, state_->file),
                      label + ": expected a list of strings, but this item is " + describe_kind(item));
    out.push_back(item.Scalar());
  }
  return out;
}

absl::StatusOr<std::string> Node::get_choice(std::string_view key, std::string fallback,
                                             const std::vector<std::string>& choices) const {
  PATCHBAY_CONFIG_LOOKUP(key);
  if (v.IsScalar() && std::find(choices.begin(), choices.end(), v.Scalar()) != choices.end()) return v.Scalar();
  std::string hint;
  if (v.IsScalar()) hint = did_you_mean(v.Scalar(), choices);
  return error_at(vmark, label + ": expected one of " + join(choices, ", ") + ", got " + describe_kind(v) + hint);
}

#undef PATCHBAY_CONFIG_LOOKUP

absl::StatusOr<std::string> Node::require_string(std::string_view key) const {
  state_->known.emplace(key);
  auto kv = state_->find(key);
  const std::string where = context_.empty() ? std::string() : context_ + ": ";
  if (!kv) return error_at(mark(), where + "missing required key " + quote(key));
  if (kv->second.IsNull())
    return error_at(mark_of_yaml(kv->first, state_->file), where + "required key " + quote(key) + " has no value");
  return get_string(key, {});
}

absl::StatusOr<Node> Node::get_map(std::string_view key) const {
  state_->known.emplace(key);
  if (auto it = state_->children.find(key); it != state_->children.end()) return it->second;
  const std::string child_context = quote(key) + (context_.empty() ? std::string() : " of " + context_);
  auto kv = state_->find(key);
  Node child;
  if (!kv || kv->second.IsNull()) {
    child = Node(YAML::Node(YAML::NodeType::Map), state_->file, child_context);
  } else if (!kv->second.IsMap()) {
    const std::string label =
        context_.empty() || context_ == kTopLevel ? std::string(key) : context_ + ": " + std::string(key);
    return error_at(mark_of_yaml(kv->second, state_->file),
                    label + ": expected a mapping, got " + describe_kind(kv->second));
  } else {
    child = Node(kv->second, state_->file, child_context);
  }
  state_->children.emplace(std::string(key), child);
  return child;
}

absl::Status Node::check_unknown_keys() const {
  std::vector<std::string> problems;
  const std::string where = context_.empty() ? std::string(kTopLevel) : context_;
  if (state_->yaml.IsMap()) {
    std::vector<std::string> known(state_->known.begin(), state_->known.end());
    const std::string known_list = known.empty() ? std::string("(none)") : join(known, ", ");
    for (auto it = state_->yaml.begin(); it != state_->yaml.end(); ++it) {
      const YAML::Node k = it->first;  // a copy: the iterator hands out a temporary
      const Mark km = mark_of_yaml(k, state_->file);
      if (!k.IsScalar()) {
        problems.emplace_back(error_at(km, where + ": keys must be plain names, got " + describe_kind(k)).message());
        continue;
      }
      if (state_->known.count(k.Scalar())) continue;
      problems.emplace_back(error_at(km, where + ": unknown key " + quote(k.Scalar()) + did_you_mean(k.Scalar(), known) +
                                             "; known keys here: " + known_list)
                                .message());
    }
  }
  for (const auto& [name, child] : state_->children) {
    absl::Status s = child.check_unknown_keys();
    if (!s.ok()) problems.emplace_back(s.message());
  }
  if (problems.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(join(problems, "\n"));
}

// ---------------------------------------------------------------------------------------------
// Config

namespace {

/// Replaces ${VAR} in every scalar value (not in keys), and reports duplicate keys.
void expand_tree(YAML::Node node, const std::string& file, Problems& problems, std::vector<YAML::Node>& done) {
  if (node.IsMap()) {
    std::map<std::string, Mark> seen;
    for (auto it = node.begin(); it != node.end(); ++it) {
      if (it->first.IsScalar()) {
        const Mark km = mark_of_yaml(it->first, file);
        auto [pos, inserted] = seen.emplace(it->first.Scalar(), km);
        if (!inserted)
          problems.add(km, "duplicate key " + quote(it->first.Scalar()) + " (first written at line " +
                               std::to_string(pos->second.line) + "); remove one of them");
      }
      expand_tree(it->second, file, problems, done);
    }
  } else if (node.IsSequence()) {
    for (YAML::Node item : node) expand_tree(item, file, problems, done);
  } else if (node.IsScalar()) {
    const std::string& s = node.Scalar();
    if (s.find('$') == std::string::npos) return;
    // An alias shares its node with the anchor: expand it once.
    for (const auto& d : done)
      if (d.is(node)) return;
    auto expanded = expand_env(s);
    const Mark m = mark_of_yaml(node, file);
    if (!expanded.ok()) {
      problems.add(m, std::string(expanded.status().message()));
      problems.suppress_after(m);
      return;
    }
    node = *expanded;
    done.push_back(node);
  }
}

std::string feature_names() {
  std::vector<std::string> names;
  for (auto n : Features::names()) names.emplace_back(n);
  return join(names, ", ");
}

/// The value of `key` in a mapping, if present. (yaml-cpp's operator[] gives an invalid node
/// that throws on use when the key is absent, and the non-const one may insert it.)
std::optional<YAML::Node> lookup(const YAML::Node& map, std::string_view key) {
  if (!map.IsMap()) return std::nullopt;
  for (auto it = map.begin(); it != map.end(); ++it)
    if (it->first.IsScalar() && it->first.Scalar() == key) return it->second;
  return std::nullopt;
}

// Where a value's problem is reported: the value itself, or its key when the value is null
// (yaml-cpp places a null value at the next token).
Mark value_mark(const YAML::Node& key, const YAML::Node& value, const std::string& file) {
  return value.IsNull() ? mark_of_yaml(key, file) : mark_of_yaml(value, file);
}

std::string resolve_plugin(const std::string& path, const std::string& base_dir) {
  std::filesystem::path p(path);
  if (p.is_absolute()) return p.lexically_normal().string();
  std::filesystem::path base(base_dir.empty() ? std::string(".") : base_dir);
  std::error_code ec;
  std::filesystem::path full = std::filesystem::absolute(base / p, ec);
  if (ec) full = base / p;
  return full.lexically_normal().string();
}

void parse_plugins(const YAML::Node& key, const YAML::Node& v, const std::string& file, const std::string& base_dir,
                   Config& cfg, Problems& problems) {
  if (v.IsNull()) return;
  if (!v.IsSequence()) {
    problems.add(value_mark(key, v, file),
                 "plugins: expected a list of module paths, e.g. plugins: [ ./libpatchbay_redis.so ], got " +
                     describe_kind(v));
    return;
  }
  for (const YAML::Node& item : v) {
    const Mark m = mark_of_yaml(item, file);
    if (!item.IsScalar() || item.Scalar().empty()) {
      problems.add(m, "plugins: expected a module path, got " + describe_kind(item));
      continue;
    }
    cfg.plugins.push_back(PluginSpec{item.Scalar(), resolve_plugin(item.Scalar(), base_dir), m});
  }
}

void parse_transports(const YAML::Node& key, const YAML::Node& v, const std::string& file, Config& cfg,
                      Problems& problems) {
  if (v.IsNull()) return;
  if (!v.IsMap()) {
    problems.add(value_mark(key, v, file),
                 "transports: expected a mapping of transport name to settings, e.g. transports: { bus: { type: "
                 "inproc } }, got " +
                     describe_kind(v));
    return;
  }
  for (auto it = v.begin(); it != v.end(); ++it) {
    const Mark km = mark_of_yaml(it->first, file);
    if (!it->first.IsScalar() || it->first.Scalar().empty()) {
      problems.add(km, "transports: a transport name must be a plain name, got " + describe_kind(it->first));
      continue;
    }
    const std::string name = it->first.Scalar();
    const std::string context = "transport " + quote(name);
    const YAML::Node body = it->second;  // a copy: the iterator hands out a temporary
    if (body.IsNull()) {
      problems.add(km, context + ": missing required key 'type' (e.g. " + name + ": { type: inproc })");
      continue;
    }
    if (!body.IsMap()) {
      problems.add(mark_of_yaml(body, file), context + ": expected a mapping with at least 'type', e.g. " + name +
                                                 ": { type: inproc }, got " + describe_kind(body));
      continue;
    }
    TransportSpec spec;
    spec.name = name;
    spec.mark = km;
    spec.settings = Node(body, file, context);
    auto type = spec.settings.require_string("type");
    if (!type.ok()) {
      problems.add(type.status());
      continue;
    }
    if (type->empty()) {
      problems.add(spec.settings.mark_of("type"), context + ": 'type' must not be empty");
      continue;
    }
    spec.type = *type;
    spec.settings.accept({"type"});
    cfg.transports.push_back(std::move(spec));
  }
}

void parse_middleware(const YAML::Node& v, const std::string& binding, const std::string& file,
                      BindingSpec& spec, Problems& problems) {
  const std::string where = "binding " + quote(binding) + ": middleware";
  if (v.IsNull()) return;
  if (!v.IsSequence()) {
    problems.add(mark_of_yaml(v, file),
                 where + ": expected a list of mappings, e.g. middleware: [ { type: headers } ], got " +
                     describe_kind(v));
    return;
  }
  int index = 0;
  for (const YAML::Node& item : v) {
    ++index;
    const Mark m = mark_of_yaml(item, file);
    if (!item.IsMap()) {
      problems.add(m, where + " #" + std::to_string(index) + ": expected a mapping with at least 'type', got " +
                          describe_kind(item));
      continue;
    }
    Node probe(item, file, "middleware #" + std::to_string(index) + " of binding " + quote(binding));
    auto type = probe.require_string("type");
    if (!type.ok()) {
      problems.add(type.status());
      continue;
    }
    if (type->empty()) {
      problems.add(probe.mark_of("type"), probe.context() + ": 'type' must not be empty");
      continue;
    }
    MiddlewareSpec mw;
    mw.type = *type;
    mw.mark = m;
    mw.settings = Node(item, file, "middleware " + quote(*type) + " of binding " + quote(binding));
    mw.settings.accept({"type"});
    spec.middleware.push_back(std::move(mw));
  }
}

void parse_bindings(const YAML::Node& key, const YAML::Node& v, const std::string& file,
                    const std::vector<std::string>& transport_names, Config& cfg, Problems& problems) {
  if (v.IsNull()) return;
  if (!v.IsMap()) {
    problems.add(value_mark(key, v, file),
                 "bindings: expected a mapping of binding name to settings, e.g. bindings: { ticks: { transport: bus "
                 "} }, got " +
                     describe_kind(v));
    return;
  }
  for (auto it = v.begin(); it != v.end(); ++it) {
    const Mark km = mark_of_yaml(it->first, file);
    if (!it->first.IsScalar() || it->first.Scalar().empty()) {
      problems.add(km, "bindings: a binding name must be a plain name, got " + describe_kind(it->first));
      continue;
    }
    const std::string name = it->first.Scalar();
    const std::string context = "binding " + quote(name);
    const YAML::Node body = it->second;  // a copy: the iterator hands out a temporary
    BindingSpec spec;
    spec.name = name;
    spec.wire_name = name;
    spec.mark = km;
    spec.transport_mark = km;
    spec.require_mark = km;
    if (!body.IsNull() && !body.IsMap()) {
      problems.add(mark_of_yaml(body, file), context + ": expected a mapping (transport, name, require, "
                                                       "middleware), got " +
                                                 describe_kind(body));
      continue;
    }
    Node node(body.IsNull() ? YAML::Node(YAML::NodeType::Map) : body, file, context);
    bool ok = true;

    if (auto t = node.get_string("transport", {}); !t.ok()) {
      problems.add(t.status());
      ok = false;
    } else if (!t->empty()) {
      spec.transport = *t;
      spec.transport_mark = mark_of_yaml(*lookup(body, "transport"), file);
    }
    if (auto n = node.get_string("name", name); !n.ok()) {
      problems.add(n.status());
      ok = false;
    } else {
      spec.wire_name = n->empty() ? name : *n;
    }
    if (auto r = node.get_string_list("require", {}); !r.ok()) {
      problems.add(r.status());
      ok = false;
    } else {
      std::vector<Mark> item_marks;
      if (auto req = lookup(body, "require"); req && req->IsSequence()) {
        spec.require_mark = mark_of_yaml(*req, file);
        for (const YAML::Node& item : *req) item_marks.push_back(mark_of_yaml(item, file));
      }
      for (std::size_t i = 0; i < r->size(); ++i) {
        const std::string& feature = (*r)[i];
        const Mark fm = i < item_marks.size() ? item_marks[i] : spec.require_mark;
        if (!Features::known(feature)) {
          std::vector<std::string> names;
          for (auto n : Features::names()) names.emplace_back(n);
          problems.add(fm, context + ": unknown feature " + quote(feature) + did_you_mean(feature, names) +
                               " in require; valid names: " + feature_names());
          ok = false;
        }
      }
      spec.require = *r;
    }
    node.accept({"middleware"});
    if (auto mw = lookup(body, "middleware")) {
      parse_middleware(*mw, name, file, spec, problems);
    }
    problems.add(node.check_unknown_keys());

    if (spec.transport.empty() && !cfg.default_transport.empty()) {
      spec.transport = cfg.default_transport;
      spec.transport_mark = cfg.default_transport_mark;
    } else if (!spec.transport.empty()) {
      const auto& names = transport_names;
      if (std::find(names.begin(), names.end(), spec.transport) == names.end()) {
        problems.add(spec.transport_mark,
                     context + ": transport " + quote(spec.transport) + " is not defined under transports" +
                         did_you_mean(spec.transport, names) +
                         (names.empty() ? std::string("; no transports are defined (add one under transports:, or "
                                                      "remove this line to use the embedded in-process transport)")
                                        : "; defined: " + join(names, ", ")));
        ok = false;
      }
    }
    if (ok) cfg.bindings.push_back(std::move(spec));
  }
}

}  // namespace

Config Config::embedded_default() {
  Config c;
  c.file = "<embedded default>";
  return c;
}

absl::StatusOr<Config> Config::parse(std::string_view text, std::string file_name, std::string base_dir) {
  Config cfg;
  cfg.file = file_name;
  const std::string& file = cfg.file;

  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::ParserException& e) {
    return error_at(to_mark(e.mark, file), "YAML syntax error: " + e.msg);
  } catch (const YAML::Exception& e) {
    return error_at(to_mark(e.mark, file), "cannot read the YAML: " + e.msg);
  }
  if (!root.IsDefined() || root.IsNull()) return cfg;  // empty file, or only comments
  if (!root.IsMap())
    return error_at(mark_of_yaml(root, file),
                    "the top level must be a mapping with keys such as plugins, transports and bindings, got " +
                        describe_kind(root));

  Problems problems(file);
  try {
    std::vector<YAML::Node> done;
    expand_tree(root, file, problems, done);

    Node top(root, file, std::string(kTopLevel));
    top.accept({"plugins", "threads", "drain_timeout", "default_transport", "transports", "bindings"});

    if (auto t = top.get_int("threads", 0, 1, 256); t.ok())
      cfg.threads = static_cast<int>(*t);
    else
      problems.add(t.status());
    if (auto d = top.get_duration("drain_timeout", cfg.drain_timeout); d.ok())
      cfg.drain_timeout = *d;
    else
      problems.add(d.status());
    if (auto d = top.get_string("default_transport", {}); d.ok()) {
      cfg.default_transport = *d;
      if (!d->empty()) cfg.default_transport_mark = mark_of_yaml(*lookup(root, "default_transport"), file);
    } else {
      problems.add(d.status());
    }

    for (auto it = root.begin(); it != root.end(); ++it) {
      if (!it->first.IsScalar()) continue;
      const std::string& k = it->first.Scalar();
      if (k == "plugins") parse_plugins(it->first, it->second, file, base_dir, cfg, problems);
      if (k == "transports") parse_transports(it->first, it->second, file, cfg, problems);
    }

    // Transport names are checked against the keys written, even those whose settings are wrong
    // (that problem is reported on its own).
    std::vector<std::string> transport_names;
    if (auto transports = lookup(root, "transports"); transports && transports->IsMap())
      for (auto it = transports->begin(); it != transports->end(); ++it)
        if (it->first.IsScalar()) transport_names.push_back(it->first.Scalar());
    if (!cfg.default_transport.empty() &&
        std::find(transport_names.begin(), transport_names.end(), cfg.default_transport) == transport_names.end()) {
      problems.add(cfg.default_transport_mark,
                   "default_transport: " + quote(cfg.default_transport) + " is not defined under transports" +
                       did_you_mean(cfg.default_transport, transport_names) +
                       (transport_names.empty() ? std::string("; no transports are defined")
                                                : "; defined: " + join(transport_names, ", ")));
    }

    // Bindings may name transports whose own settings were wrong: those are reported once, at
    // the transport, not again at every binding using them.
    for (auto it = root.begin(); it != root.end(); ++it) {
      if (it->first.IsScalar() && it->first.Scalar() == "bindings")
        parse_bindings(it->first, it->second, file, transport_names, cfg, problems);
    }

    problems.add(top.check_unknown_keys());
  } catch (const YAML::Exception& e) {
    problems.add(to_mark(e.mark, file), std::string("cannot read the configuration: ") + e.what());
  }
  if (!problems.empty()) return problems.status();
  return cfg;
}

absl::StatusOr<Config> Config::load_file(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (ec || !fs::exists(st)) {
    std::error_code cwd_ec;
    const std::string cwd = fs::current_path(cwd_ec).string();
    return absl::NotFoundError("config file '" + path + "' does not exist (working directory: " + cwd +
                               "); check the path");
  }
  if (fs::is_directory(st))
    return absl::InvalidArgumentError("config file '" + path + "' is a directory; name the YAML file inside it");
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int err = errno;
    return absl::PermissionDeniedError("cannot read config file '" + path + "': " + std::strerror(err));
  }
  std::ostringstream buf;
  buf << in.rdbuf();
  if (in.bad()) return absl::DataLossError("error while reading config file '" + path + "'");
  std::string base = fs::path(path).parent_path().string();
  if (base.empty()) base = ".";
  return parse(buf.str(), path, base);
}

}  // namespace patchbay::config
