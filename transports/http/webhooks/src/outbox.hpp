// The webhook outbox: pending deliveries and dynamic subscriptions in one SQLite database.
//
// Schema (PRAGMA user_version = kSchemaVersion, application_id = kApplicationId):
//   messages(id, topic, message_id, headers BLOB, payload BLOB, position, time_ms)
//   deliveries(id, endpoint, message → messages.id, attempts, next_at_ms, last_error)
//   endpoints(id, url, topics JSON, secrets JSON, ordered, max_concurrency, disabled, created_ms)
// A message row lives while some delivery row refers to it.
//
// A file is opened in WAL mode with synchronous=NORMAL (a committed row survives a process
// crash; a power loss may lose the last commits) and locking_mode=EXCLUSIVE: the file stays
// locked while it is open, so a second sender on the same file fails at start with an error
// naming it instead of delivering everything twice. An empty path is an in-memory database.
//
// Thread safety: every member may be called from any thread (one mutex; one connection).
// Failures after open() throw boost::system::system_error(errc::unavailable) naming the file.
#pragma once

#include <patchbay/message.hpp>

#include <absl/status/statusor.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

struct sqlite3;
struct sqlite3_stmt;

namespace patchbay::webhook {

inline constexpr int kSchemaVersion = 1;
inline constexpr int kApplicationId = 0x50425748;  // "PBWH"

struct OutboxDelivery {
  std::int64_t id = 0;
  std::string endpoint;
  std::int64_t message = 0;
  int attempts = 0;
  std::int64_t next_at_ms = 0;
  std::string last_error;
};

struct OutboxMessage {
  std::int64_t id = 0;
  Message message;  ///< topic, id, headers, payload, time
  std::string position;
};

struct OutboxEndpoint {
  std::string id;
  std::string url;
  std::vector<std::string> topics;
  std::string secrets_json;  ///< [{"secret":"whsec_..","until_ms":0}, ..]
  int ordered = -1;          ///< -1: the sender's default
  std::int64_t max_concurrency = 0;
  bool disabled = false;
  std::int64_t created_ms = 0;
};

class Outbox {
 public:
  static absl::StatusOr<std::unique_ptr<Outbox>> open(const std::string& path);
  ~Outbox();
  Outbox(const Outbox&) = delete;
  Outbox& operator=(const Outbox&) = delete;

  const std::string& path() const noexcept { return path_; }
  bool durable() const noexcept { return !path_.empty(); }

  /// Stores `msg` and one delivery per endpoint, due at `due_ms`, in one transaction. Returns
  /// the message row; `rows` gets the delivery rows (in the order of `endpoints`).
  std::int64_t add(const Message& msg, const std::string& position, const std::vector<std::string>& endpoints,
                   std::int64_t due_ms, std::vector<std::int64_t>& rows);
  /// Deletes a delivery (and its message when no other delivery needs it).
  void remove(std::int64_t delivery, std::int64_t message);
  /// remove(), committed later: with the next add() (in its transaction), at flush(), or once
  /// 256 are waiting — one commit for many deliveries. A crash before the commit only delivers
  /// those again (at-least-once).
  void remove_deferred(std::int64_t delivery, std::int64_t message);
  /// Commits the deferred removals.
  void flush();
  std::size_t deferred();
  void reschedule(std::int64_t delivery, int attempts, std::int64_t next_at_ms, const std::string& last_error);
  /// Every delivery and the messages they refer to.
  void load(const std::function<void(OutboxMessage)>& on_message, const std::function<void(OutboxDelivery)>& on_delivery);
  /// Deletes every delivery of `endpoint` (and orphaned messages).
  void remove_endpoint_deliveries(const std::string& endpoint);
  std::size_t pending();

  void save_endpoint(const OutboxEndpoint& endpoint);  ///< insert or replace
  void delete_endpoint(const std::string& id);          ///< and its deliveries
  std::vector<OutboxEndpoint> endpoints();

 private:
  Outbox() = default;
  sqlite3_stmt* prepare(const char* sql);
  void exec(const char* sql);
  [[noreturn]] void fail(const char* what);
  void remove_locked(std::int64_t delivery, std::int64_t message);
  void flush_locked();

  std::string path_;
  std::string name_;  // for errors: the path, or "(in memory)"
  sqlite3* db_ = nullptr;
  std::mutex mu_;
  std::vector<sqlite3_stmt*> statements_;
  std::vector<std::pair<std::int64_t, std::int64_t>> deferred_;  // (delivery, message) to delete
  sqlite3_stmt* insert_message_ = nullptr;
  sqlite3_stmt* insert_delivery_ = nullptr;
  sqlite3_stmt* delete_delivery_ = nullptr;
  sqlite3_stmt* delete_orphan_ = nullptr;
  sqlite3_stmt* reschedule_ = nullptr;
};

}  // namespace patchbay::webhook
