// The webhook outbox on SQLite (see outbox.hpp).
#include "outbox.hpp"

#include <patchbay/error.hpp>

#include <absl/strings/str_cat.h>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <sqlite3.h>

#include <chrono>
#include <cstring>

namespace patchbay::webhook {

namespace {

// Headers as a blob: for each header, 4-byte little-endian lengths of name and value, then the bytes.
void put_u32(std::string& out, std::size_t n) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
}

std::string encode_headers(const Headers& headers) {
  std::string out;
  for (const auto& [name, value] : headers) {
    put_u32(out, name.size());
    out += name;
    put_u32(out, value.size());
    out += value;
  }
  return out;
}

bool decode_headers(std::string_view in, Headers& out) {
  auto take = [&in](std::string& s) {
    if (in.size() < 4) return false;
    std::size_t n = 0;
    for (int i = 0; i < 4; ++i) n |= static_cast<std::size_t>(static_cast<unsigned char>(in[i])) << (8 * i);
    in.remove_prefix(4);
    if (in.size() < n) return false;
    s.assign(in.substr(0, n));
    in.remove_prefix(n);
    return true;
  };
  while (!in.empty()) {
    std::string name, value;
    if (!take(name) || !take(value)) return false;
    out.add(std::move(name), std::move(value));
  }
  return true;
}

std::string column_text(sqlite3_stmt* s, int i) {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(s, i));
  return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(s, i))) : std::string();
}

std::string column_blob(sqlite3_stmt* s, int i) {
  const auto* p = static_cast<const char*>(sqlite3_column_blob(s, i));
  return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(s, i))) : std::string();
}

// A null pointer would bind SQL NULL: an empty value (an empty payload's view has no data) is
// bound as an empty string or blob.
void bind_text(sqlite3_stmt* s, int i, std::string_view v) {
  sqlite3_bind_text(s, i, v.data() ? v.data() : "", static_cast<int>(v.size()), SQLITE_TRANSIENT);
}

void bind_blob(sqlite3_stmt* s, int i, std::string_view v) {
  if (v.empty())
    sqlite3_bind_zeroblob(s, i, 0);
  else
    sqlite3_bind_blob(s, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
}

// Resets a statement when it goes out of scope (so a throw leaves it reusable).
struct Reset {
  sqlite3_stmt* s;
  ~Reset() {
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
  }
};

constexpr const char* kSchema = R"sql(
CREATE TABLE messages(
  id INTEGER PRIMARY KEY,
  topic TEXT NOT NULL,
  message_id TEXT NOT NULL,
  headers BLOB NOT NULL,
  payload BLOB NOT NULL,
  position TEXT NOT NULL,
  time_ms INTEGER NOT NULL);
CREATE TABLE deliveries(
  id INTEGER PRIMARY KEY,
  endpoint TEXT NOT NULL,
  message INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_at_ms INTEGER NOT NULL,
  last_error TEXT NOT NULL DEFAULT '');
CREATE INDEX deliveries_message ON deliveries(message);
CREATE INDEX deliveries_endpoint ON deliveries(endpoint);
CREATE TABLE endpoints(
  id TEXT PRIMARY KEY,
  url TEXT NOT NULL,
  topics TEXT NOT NULL,
  secrets TEXT NOT NULL,
  ordered INTEGER NOT NULL,
  max_concurrency INTEGER NOT NULL,
  disabled INTEGER NOT NULL,
  created_ms INTEGER NOT NULL);
)sql";

}  // namespace

absl::StatusOr<std::unique_ptr<Outbox>> Outbox::open(const std::string& path) {
  std::unique_ptr<Outbox> o(new Outbox());
  o->path_ = path;
  o->name_ = path.empty() ? std::string("(in memory)") : path;
  const std::string where = absl::StrCat("webhook outbox '", o->name_, "'");
  const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
  int rc = sqlite3_open_v2(path.empty() ? ":memory:" : path.c_str(), &o->db_, flags, nullptr);
  if (rc != SQLITE_OK) {
    std::string why = o->db_ ? sqlite3_errmsg(o->db_) : sqlite3_errstr(rc);
    return absl::FailedPreconditionError(absl::StrCat(where, ": cannot open: ", why));
  }
  sqlite3_extended_result_codes(o->db_, 1);
  sqlite3_busy_timeout(o->db_, 200);
  // Runs `sql`; an error status naming the file and what to do.
  auto run = [&](const char* sql) -> absl::Status {
    char* err = nullptr;
    const int r = sqlite3_exec(o->db_, sql, nullptr, nullptr, &err);
    std::string why = err ? err : sqlite3_errstr(r);
    sqlite3_free(err);
    if (r == SQLITE_OK) return absl::OkStatus();
    const int primary = r & 0xff;
    if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) {
      return absl::FailedPreconditionError(absl::StrCat(
          where, " is locked by another process or connection (", why,
          "): is another patchbay hub using it? Each hub needs its own outbox file"));
    }
    if (primary == SQLITE_NOTADB || primary == SQLITE_CORRUPT) {
      return absl::DataLossError(absl::StrCat(
          where, " is corrupt or not a SQLite database (", why,
          "); it is left untouched: move it away to start with an empty outbox (its pending deliveries would be lost)"));
    }
    return absl::FailedPreconditionError(absl::StrCat(where, ": ", why));
  };
  auto scalar = [&](const char* sql, std::int64_t& out) -> absl::Status {
    sqlite3_stmt* s = nullptr;
    int r = sqlite3_prepare_v2(o->db_, sql, -1, &s, nullptr);
    if (r == SQLITE_OK) {
      r = sqlite3_step(s);
      if (r == SQLITE_ROW) {
        out = sqlite3_column_int64(s, 0);
        r = SQLITE_OK;
      }
    }
    sqlite3_finalize(s);
    if (r == SQLITE_OK || r == SQLITE_DONE) return absl::OkStatus();
    return run(sql);  // reports the same failure with its text
  };
  if (!path.empty()) {
    // Before the first access: the lock is then held for as long as the file is open, and WAL
    // needs no shared-memory file.
    if (auto s = run("PRAGMA locking_mode=EXCLUSIVE"); !s.ok()) return s;
  }
  std::int64_t app = 0, version = 0, tables = 0;
  if (auto s = scalar("PRAGMA application_id", app); !s.ok()) return s;
  if (auto s = scalar("PRAGMA user_version", version); !s.ok()) return s;
  if (auto s = scalar("SELECT count(*) FROM sqlite_schema", tables); !s.ok()) return s;
  if (app == 0 && tables == 0) {
    if (!path.empty()) {
      if (auto s = run("PRAGMA journal_mode=WAL"); !s.ok()) return s;
    }
    if (auto s = run("BEGIN EXCLUSIVE"); !s.ok()) return s;
    if (auto s = run(kSchema); !s.ok()) return s;
    if (auto s = run(absl::StrCat("PRAGMA application_id=", kApplicationId, "; PRAGMA user_version=", kSchemaVersion)
                         .c_str());
        !s.ok())
      return s;
    if (auto s = run("COMMIT"); !s.ok()) return s;
  } else if (app != kApplicationId) {
    return absl::FailedPreconditionError(
        absl::StrCat(where, " is a SQLite database but not a patchbay webhook outbox (application_id ", app,
                     "); name another file in webhooks: outbox:"));
  } else if (version > kSchemaVersion) {
    return absl::FailedPreconditionError(absl::StrCat(where, " has schema version ", version,
                                                      ", newer than this patchbay understands (", kSchemaVersion,
                                                      "): it was written by a later release"));
  } else {
    if (!path.empty()) {
      if (auto s = run("PRAGMA journal_mode=WAL"); !s.ok()) return s;
    }
    // Takes the exclusive lock now (a second hub on the file fails here, not later).
    if (auto s = run("BEGIN EXCLUSIVE; COMMIT"); !s.ok()) return s;
    sqlite3_stmt* s = nullptr;
    std::string check;
    if (sqlite3_prepare_v2(o->db_, "PRAGMA quick_check", -1, &s, nullptr) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
      check = column_text(s, 0);
    const int r = sqlite3_finalize(s);
    if (check != "ok") {
      if (check.empty()) {
        if (auto st = run("PRAGMA quick_check"); !st.ok()) return st;
        check = sqlite3_errstr(r);
      }
      return absl::DataLossError(absl::StrCat(where, " is corrupt (quick_check: ", check,
                                              "); it is left untouched: move it away to start with an empty outbox"));
    }
  }
  if (auto s = run("PRAGMA synchronous=NORMAL"); !s.ok()) return s;
  try {
    o->insert_message_ = o->prepare(
        "INSERT INTO messages(topic, message_id, headers, payload, position, time_ms) VALUES(?,?,?,?,?,?)");
    o->insert_delivery_ = o->prepare("INSERT INTO deliveries(endpoint, message, next_at_ms) VALUES(?,?,?)");
    o->delete_delivery_ = o->prepare("DELETE FROM deliveries WHERE id=?");
    o->delete_orphan_ =
        o->prepare("DELETE FROM messages WHERE id=?1 AND NOT EXISTS (SELECT 1 FROM deliveries WHERE message=?1)");
    o->reschedule_ = o->prepare("UPDATE deliveries SET attempts=?, next_at_ms=?, last_error=? WHERE id=?");
  } catch (const std::exception& e) {
    return absl::FailedPreconditionError(e.what());
  }
  return o;
}

Outbox::~Outbox() {
  try {
    flush();
  } catch (const std::exception&) {
    // Best effort: those deliveries are made again at the next start.
  }
  for (auto* s : statements_) sqlite3_finalize(s);
  if (db_) sqlite3_close(db_);
}

void Outbox::fail(const char* what) {
  throw_error(errc::unavailable, absl::StrCat("webhook outbox '", name_, "': ", what, ": ", sqlite3_errmsg(db_)));
}

sqlite3_stmt* Outbox::prepare(const char* sql) {
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v2(db_, sql, -1, &s, nullptr) != SQLITE_OK) fail("prepare");
  statements_.push_back(s);
  return s;
}

void Outbox::exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string why = err ? err : "?";
    sqlite3_free(err);
    throw_error(errc::unavailable, absl::StrCat("webhook outbox '", name_, "': ", sql, ": ", why));
  }
}

std::int64_t Outbox::add(const Message& msg, const std::string& position, const std::vector<std::string>& endpoints,
                         std::int64_t due_ms, std::vector<std::int64_t>& rows) {
  std::lock_guard lock(mu_);
  exec("BEGIN");
  try {
    for (auto [d, m] : deferred_) remove_locked(d, m);
    std::int64_t message = 0;
    {
      Reset r{insert_message_};
      bind_text(insert_message_, 1, msg.topic);
      bind_text(insert_message_, 2, msg.id);
      bind_blob(insert_message_, 3, encode_headers(msg.headers));
      bind_blob(insert_message_, 4, msg.payload.view());
      bind_text(insert_message_, 5, position);
      sqlite3_bind_int64(insert_message_, 6,
                         std::chrono::duration_cast<std::chrono::milliseconds>(msg.time.time_since_epoch()).count());
      if (sqlite3_step(insert_message_) != SQLITE_DONE) fail("insert message");
      message = sqlite3_last_insert_rowid(db_);
    }
    rows.clear();
    for (const auto& e : endpoints) {
      Reset r{insert_delivery_};
      bind_text(insert_delivery_, 1, e);
      sqlite3_bind_int64(insert_delivery_, 2, message);
      sqlite3_bind_int64(insert_delivery_, 3, due_ms);
      if (sqlite3_step(insert_delivery_) != SQLITE_DONE) fail("insert delivery");
      rows.push_back(sqlite3_last_insert_rowid(db_));
    }
    exec("COMMIT");
    deferred_.clear();
    return message;
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

void Outbox::remove_locked(std::int64_t delivery, std::int64_t message) {
  {
    Reset r{delete_delivery_};
    sqlite3_bind_int64(delete_delivery_, 1, delivery);
    if (sqlite3_step(delete_delivery_) != SQLITE_DONE) fail("delete delivery");
  }
  {
    Reset r{delete_orphan_};
    sqlite3_bind_int64(delete_orphan_, 1, message);
    if (sqlite3_step(delete_orphan_) != SQLITE_DONE) fail("delete message");
  }
}

void Outbox::remove(std::int64_t delivery, std::int64_t message) {
  std::lock_guard lock(mu_);
  deferred_.emplace_back(delivery, message);
  flush_locked();
}

void Outbox::remove_deferred(std::int64_t delivery, std::int64_t message) {
  std::lock_guard lock(mu_);
  deferred_.emplace_back(delivery, message);
  if (deferred_.size() >= 256) flush_locked();
}

void Outbox::flush() {
  std::lock_guard lock(mu_);
  flush_locked();
}

std::size_t Outbox::deferred() {
  std::lock_guard lock(mu_);
  return deferred_.size();
}

void Outbox::flush_locked() {
  if (deferred_.empty()) return;
  exec("BEGIN");
  try {
    for (auto [d, m] : deferred_) remove_locked(d, m);
    exec("COMMIT");
    deferred_.clear();
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

void Outbox::reschedule(std::int64_t delivery, int attempts, std::int64_t next_at_ms, const std::string& last_error) {
  std::lock_guard lock(mu_);
  Reset r{reschedule_};
  sqlite3_bind_int(reschedule_, 1, attempts);
  sqlite3_bind_int64(reschedule_, 2, next_at_ms);
  bind_text(reschedule_, 3, last_error);
  sqlite3_bind_int64(reschedule_, 4, delivery);
  if (sqlite3_step(reschedule_) != SQLITE_DONE) fail("update delivery");
}

void Outbox::load(const std::function<void(OutboxMessage)>& on_message,
                  const std::function<void(OutboxDelivery)>& on_delivery) {
  std::lock_guard lock(mu_);
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v2(db_,
                         "SELECT id, topic, message_id, headers, payload, position, time_ms FROM messages "
                         "WHERE id IN (SELECT message FROM deliveries) ORDER BY id",
                         -1, &s, nullptr) != SQLITE_OK)
    fail("load messages");
  int rc = 0;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    OutboxMessage m;
    m.id = sqlite3_column_int64(s, 0);
    m.message.topic = column_text(s, 1);
    m.message.id = column_text(s, 2);
    const auto headers = column_blob(s, 3);
    if (!decode_headers(headers, m.message.headers)) m.message.headers = Headers();
    m.message.payload = Bytes(column_blob(s, 4));
    m.position = column_text(s, 5);
    m.message.time = Message::time_point(std::chrono::milliseconds(sqlite3_column_int64(s, 6)));
    on_message(std::move(m));
  }
  sqlite3_finalize(s);
  if (rc != SQLITE_DONE) fail("load messages");
  if (sqlite3_prepare_v2(db_,
                         "SELECT id, endpoint, message, attempts, next_at_ms, last_error FROM deliveries ORDER BY message, id",
                         -1, &s, nullptr) != SQLITE_OK)
    fail("load deliveries");
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    OutboxDelivery d;
    d.id = sqlite3_column_int64(s, 0);
    d.endpoint = column_text(s, 1);
    d.message = sqlite3_column_int64(s, 2);
    d.attempts = sqlite3_column_int(s, 3);
    d.next_at_ms = sqlite3_column_int64(s, 4);
    d.last_error = column_text(s, 5);
    on_delivery(std::move(d));
  }
  sqlite3_finalize(s);
  if (rc != SQLITE_DONE) fail("load deliveries");
}

void Outbox::remove_endpoint_deliveries(const std::string& endpoint) {
  std::lock_guard lock(mu_);
  sqlite3_stmt* s = nullptr;
  exec("BEGIN");
  try {
    if (sqlite3_prepare_v2(db_, "DELETE FROM deliveries WHERE endpoint=?", -1, &s, nullptr) != SQLITE_OK)
      fail("delete deliveries");
    bind_text(s, 1, endpoint);
    const int rc = sqlite3_step(s);
    sqlite3_finalize(s);
    s = nullptr;
    if (rc != SQLITE_DONE) fail("delete deliveries");
    exec("DELETE FROM messages WHERE id NOT IN (SELECT message FROM deliveries)");
    exec("COMMIT");
  } catch (...) {
    sqlite3_finalize(s);
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

std::size_t Outbox::pending() {
  std::lock_guard lock(mu_);
  flush_locked();
  sqlite3_stmt* s = nullptr;
  std::size_t n = 0;
  if (sqlite3_prepare_v2(db_, "SELECT count(*) FROM deliveries", -1, &s, nullptr) == SQLITE_OK &&
      sqlite3_step(s) == SQLITE_ROW)
    n = static_cast<std::size_t>(sqlite3_column_int64(s, 0));
  sqlite3_finalize(s);
  return n;
}

void Outbox::save_endpoint(const OutboxEndpoint& e) {
  std::lock_guard lock(mu_);
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v2(db_,
                         "INSERT OR REPLACE INTO endpoints(id, url, topics, secrets, ordered, max_concurrency, disabled, "
                         "created_ms) VALUES(?,?,?,?,?,?,?,?)",
                         -1, &s, nullptr) != SQLITE_OK)
    fail("save endpoint");
  boost::json::array topics;
  for (const auto& t : e.topics) topics.emplace_back(t);
  bind_text(s, 1, e.id);
  bind_text(s, 2, e.url);
  bind_text(s, 3, boost::json::serialize(topics));
  bind_text(s, 4, e.secrets_json);
  sqlite3_bind_int(s, 5, e.ordered);
  sqlite3_bind_int64(s, 6, e.max_concurrency);
  sqlite3_bind_int(s, 7, e.disabled ? 1 : 0);
  sqlite3_bind_int64(s, 8, e.created_ms);
  const int rc = sqlite3_step(s);
  sqlite3_finalize(s);
  if (rc != SQLITE_DONE) fail("save endpoint");
}

void Outbox::delete_endpoint(const std::string& id) {
  {
    std::lock_guard lock(mu_);
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db_, "DELETE FROM endpoints WHERE id=?", -1, &s, nullptr) != SQLITE_OK) fail("delete endpoint");
    bind_text(s, 1, id);
    const int rc = sqlite3_step(s);
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) fail("delete endpoint");
  }
  remove_endpoint_deliveries(id);
}

std::vector<OutboxEndpoint> Outbox::endpoints() {
  std::lock_guard lock(mu_);
  std::vector<OutboxEndpoint> out;
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v2(db_,
                         "SELECT id, url, topics, secrets, ordered, max_concurrency, disabled, created_ms FROM endpoints "
                         "ORDER BY created_ms, id",
                         -1, &s, nullptr) != SQLITE_OK)
    fail("load endpoints");
  int rc = 0;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    OutboxEndpoint e;
    e.id = column_text(s, 0);
    e.url = column_text(s, 1);
    boost::system::error_code ec;
    auto topics = boost::json::parse(column_text(s, 2), ec);
    if (!ec && topics.is_array()) {
      for (const auto& t : topics.as_array())
        if (t.is_string()) e.topics.emplace_back(t.as_string());
    }
    e.secrets_json = column_text(s, 3);
    e.ordered = sqlite3_column_int(s, 4);
    e.max_concurrency = sqlite3_column_int64(s, 5);
    e.disabled = sqlite3_column_int(s, 6) != 0;
    e.created_ms = sqlite3_column_int64(s, 7);
    out.push_back(std::move(e));
  }
  sqlite3_finalize(s);
  if (rc != SQLITE_DONE) fail("load endpoints");
  return out;
}

}  // namespace patchbay::webhook
