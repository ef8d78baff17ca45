// patchbay/transports/redis/resp.hpp — RESP (the Redis protocol) in and out.
//
// Replies are parsed by hiredis's reader (redisReaderCreateWithFunctions / redisReaderFeed /
// redisReaderGetReply): patchbay has no RESP parser of its own. The reader is given object
// functions that build patchbay's Reply tree directly (one copy of each string, no hiredis
// redisReply to walk and free) and that refuse what no Redis server sends: an array of more
// than `max_elements` elements, a bulk string longer than `max_bulk` bytes, a negative length.
// hiredis 0.14 trusts both counts (an int cast, a length that overflows), so these limits are
// what keeps a hostile peer from making the reader allocate gigabytes or read past its buffer;
// refusing them turns such input into a protocol error, and the connection is closed.
//
// Commands are encoded as RESP arrays of bulk strings. A Command keeps its bytes as a few
// reference-counted pieces: small arguments are copied into one buffer, large ones (payloads)
// are shared, so a 4 MiB payload is never copied on its way to the socket.
//
// Thread safety: a RespReader is used by one thread at a time; a Command is a value.
#pragma once

#include <patchbay/bytes.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

struct redisReader;

namespace patchbay::redis {

/// One parsed reply.
struct Reply {
  enum class kind { string, array, integer, nil, status, error };

  kind type = kind::nil;
  std::string str;               ///< string, status and error replies
  long long integer = 0;         ///< integer replies
  std::vector<Reply> elements;   ///< array replies

  bool is_error() const noexcept { return type == kind::error; }
  bool is_nil() const noexcept { return type == kind::nil; }
  bool is_array() const noexcept { return type == kind::array; }
  bool is_string() const noexcept { return type == kind::string || type == kind::status; }

  /// A short human-readable rendering (for error messages and tests).
  std::string describe(std::size_t max_chars = 200) const;
};

/// Incremental reply parser over hiredis's reader.
class RespReader {
 public:
  struct Limits {
    std::size_t max_bulk = 512u << 20;      ///< Redis's own proto-max-bulk-len default
    std::size_t max_elements = 1u << 24;    ///< elements of one array
    std::size_t max_buffered = 520u << 20;  ///< unparsed bytes held at once
  };

  RespReader();
  explicit RespReader(Limits limits);
  ~RespReader();
  RespReader(const RespReader&) = delete;
  RespReader& operator=(const RespReader&) = delete;

  /// Hands over received bytes. They are not copied here: they must stay valid until next()
  /// has returned std::nullopt. False when the reader is in error (see error()).
  bool feed(const char* data, std::size_t size);

  /// The next complete reply, or std::nullopt once every fed byte is parsed and more are
  /// needed, or when the input is malformed (then error() is non-empty and stays so: the
  /// connection must be closed).
  std::optional<Reply> next();

  /// Bytes received but not yet part of a complete reply.
  std::size_t buffered() const noexcept;

  /// Empty while the input is well-formed; otherwise what is wrong with it.
  const std::string& error() const noexcept { return error_; }

 private:
  void fail(std::string what);

  Limits limits_;
  redisReader* reader_ = nullptr;
  const char* input_ = nullptr;  // fed, not yet handed to hiredis
  const char* input_end_ = nullptr;
  std::string error_;
};

/// A command ready for the socket: RESP bytes in shared pieces.
class Command {
 public:
  Command() = default;

  /// Starts an array of `argc` bulk strings; then call arg() exactly argc times.
  explicit Command(std::size_t argc);

  Command& arg(std::string_view s);
  Command& arg(const Bytes& b);  ///< large values are shared, not copied
  Command& arg(long long n);
  /// One argument made of `head` followed by `tail` (an envelope and its payload).
  Command& arg(std::string_view head, const Bytes& tail);

  /// The command name (the first argument), for error messages.
  const std::string& name() const noexcept { return name_; }
  /// The pieces to write, in order (finishes the encoding on first use). Throws
  /// std::logic_error when arg() was not called exactly `argc` times.
  const std::vector<Bytes>& pieces();
  std::size_t size_bytes() const noexcept { return bytes_; }

  /// Frees the encoded bytes, keeping the name (a written command that will not be resent).
  void drop_bytes() noexcept {
    pieces_.clear();
    current_.clear();
  }

  /// The whole encoding as one string (tests).
  std::string str();

 private:
  void flush();

  std::string name_;
  std::string current_;
  std::vector<Bytes> pieces_;
  std::size_t bytes_ = 0;
  std::size_t argc_ = 0;
  std::size_t args_seen_ = 0;
};

/// Builds a command from string arguments: make_command({"SET", "k", "v"}).
Command make_command(std::initializer_list<std::string_view> args);

}  // namespace patchbay::redis
