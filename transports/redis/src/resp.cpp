// RESP: hiredis's reader building patchbay Reply trees, and the command encoder.
#include <patchbay/transports/redis/resp.hpp>

#include <hiredis/read.h>

#include <charconv>
#include <memory>
#include <stdexcept>

namespace patchbay::redis {
namespace {

// Bytes handed to hiredis per redisReaderFeed. hiredis 0.14 moves its unread bytes to the front
// of its buffer every time it has consumed 1 KiB, so feeding a whole 64 KiB socket read at once
// costs dozens of large memmoves; small slices keep that cost negligible.
constexpr std::size_t kFeedSlice = 4096;
// Arguments at least this long are shared, not copied, into the command.
constexpr std::size_t kShareAbove = 16 * 1024;

RespReader::Limits& limits_of(const redisReadTask* task) {
  return *static_cast<RespReader::Limits*>(task->privdata);
}

/// Where a new object goes: a fresh root, or its slot in the parent array.
Reply* place(const redisReadTask* task) {
  if (task->parent != nullptr) {
    auto* parent = static_cast<Reply*>(task->parent->obj);
    if (parent == nullptr || task->idx < 0 || static_cast<std::size_t>(task->idx) >= parent->elements.size())
      return nullptr;
    return &parent->elements[static_cast<std::size_t>(task->idx)];
  }
  return new (std::nothrow) Reply;
}

void* create_string(const redisReadTask* task, char* str, size_t len) {
  if (len > limits_of(task).max_bulk) return nullptr;  // also catches hiredis 0.14's length overflow
  Reply* r = place(task);
  if (r == nullptr) return nullptr;
  switch (task->type) {
    case REDIS_REPLY_ERROR: r->type = Reply::kind::error; break;
    case REDIS_REPLY_STATUS: r->type = Reply::kind::status; break;
    default: r->type = Reply::kind::string; break;
  }
  r->str.assign(str, len);
  return r;
}

void* create_array(const redisReadTask* task, int elements) {
  if (elements < 0 || static_cast<std::size_t>(elements) > limits_of(task).max_elements) return nullptr;
  Reply* r = place(task);
  if (r == nullptr) return nullptr;
  r->type = Reply::kind::array;
  r->elements.resize(static_cast<std::size_t>(elements));
  return r;
}

void* create_integer(const redisReadTask* task, long long value) {
  Reply* r = place(task);
  if (r == nullptr) return nullptr;
  r->type = Reply::kind::integer;
  r->integer = value;
  return r;
}

void* create_nil(const redisReadTask* task) {
  Reply* r = place(task);
  if (r == nullptr) return nullptr;
  r->type = Reply::kind::nil;
  return r;
}

// hiredis frees only root objects; children live in their parent's vector.
void free_object(void* obj) { delete static_cast<Reply*>(obj); }

redisReplyObjectFunctions kFunctions = {create_string, create_array, create_integer, create_nil, free_object};

}  // namespace

std::string Reply::describe(std::size_t max_chars) const {
  std::string out;
  switch (type) {
    case kind::string: out = "\"" + str + "\""; break;
    case kind::status: out = str; break;
    case kind::error: out = "-" + str; break;
    case kind::integer: out = std::to_string(integer); break;
    case kind::nil: out = "(nil)"; break;
    case kind::array:
      out = "[";
      for (std::size_t i = 0; i < elements.size() && out.size() < max_chars; ++i) {
        if (i) out += ", ";
        out += elements[i].describe(max_chars);
      }
      out += "]";
      break;
  }
  if (out.size() > max_chars) {
    out.resize(max_chars);
    out += "...";
  }
  return out;
}

RespReader::RespReader() : RespReader(Limits{}) {}

RespReader::RespReader(Limits limits) : limits_(limits) {
  reader_ = redisReaderCreateWithFunctions(&kFunctions);
  if (reader_ == nullptr) throw std::bad_alloc();
  reader_->privdata = &limits_;  // (hiredis's redisReaderSetPrivdata macro casts to int)
}

RespReader::~RespReader() { redisReaderFree(reader_); }

void RespReader::fail(std::string what) {
  if (error_.empty()) error_ = std::move(what);
}

bool RespReader::feed(const char* data, std::size_t size) {
  if (!error_.empty()) return false;
  if (input_ != input_end_) {
    fail("feed() before the previous input was consumed");
    return false;
  }
  input_ = data;
  input_end_ = data + size;
  return true;
}

std::optional<Reply> RespReader::next() {
  while (error_.empty()) {
    void* out = nullptr;
    if (redisReaderGetReply(reader_, &out) != REDIS_OK) {
      const char* why = reader_->errstr[0] ? reader_->errstr : "malformed input";
      if (reader_->err == REDIS_ERR_OOM) why = "a length or element count beyond the reader's limits";
      fail(std::string("protocol error: ") + why);
      break;
    }
    if (out != nullptr) {
      std::unique_ptr<Reply> r(static_cast<Reply*>(out));
      return std::move(*r);
    }
    if (reader_->len - reader_->pos > limits_.max_buffered) {
      fail("protocol error: a reply larger than " + std::to_string(limits_.max_buffered) + " bytes");
      break;
    }
    if (input_ == input_end_) return std::nullopt;
    const std::size_t n = std::min<std::size_t>(kFeedSlice, static_cast<std::size_t>(input_end_ - input_));
    if (redisReaderFeed(reader_, input_, n) != REDIS_OK) {
      fail("protocol error: out of memory");
      break;
    }
    input_ += n;
  }
  input_ = input_end_ = nullptr;
  return std::nullopt;
}

std::size_t RespReader::buffered() const noexcept {
  return (reader_->len - reader_->pos) + static_cast<std::size_t>(input_end_ - input_);
}

Command::Command(std::size_t argc) : argc_(argc) {
  current_.reserve(256);  // one allocation for a typical PUBLISH or XADD
  current_ += '*';
  current_ += std::to_string(argc);
  current_ += "\r\n";
}

Command& Command::arg(std::string_view s) {
  if (args_seen_++ == 0) name_ = std::string(s);
  current_ += '$';
  current_ += std::to_string(s.size());
  current_ += "\r\n";
  current_.append(s);
  current_ += "\r\n";
  return *this;
}

Command& Command::arg(const Bytes& b) {
  if (b.size() < kShareAbove) return arg(b.view());
  if (args_seen_++ == 0) name_ = b.str();
  current_ += '$';
  current_ += std::to_string(b.size());
  current_ += "\r\n";
  flush();
  bytes_ += b.size();
  pieces_.push_back(b);
  current_ += "\r\n";
  return *this;
}

Command& Command::arg(std::string_view head, const Bytes& tail) {
  if (args_seen_++ == 0) name_ = std::string(head);
  if (tail.size() < kShareAbove) {
    current_ += '$';
    current_ += std::to_string(head.size() + tail.size());
    current_ += "\r\n";
    current_.append(head);
    current_.append(tail.view());
    current_ += "\r\n";
    return *this;
  }
  current_ += '$';
  current_ += std::to_string(head.size() + tail.size());
  current_ += "\r\n";
  current_.append(head);
  flush();
  bytes_ += tail.size();
  pieces_.push_back(tail);
  current_ += "\r\n";
  return *this;
}

Command& Command::arg(long long n) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, n);
  return arg(std::string_view(buf, static_cast<std::size_t>(r.ptr - buf)));
}

void Command::flush() {
  if (current_.empty()) return;
  bytes_ += current_.size();
  pieces_.emplace_back(std::move(current_));
  current_.clear();
}

const std::vector<Bytes>& Command::pieces() {
  if (args_seen_ != argc_ && !(argc_ == 0 && args_seen_ == 0 && pieces_.empty() && current_.empty()))
    throw std::logic_error("redis: command " + name_ + " declared " + std::to_string(argc_) + " arguments but has " +
                           std::to_string(args_seen_));
  flush();
  return pieces_;
}

std::string Command::str() {
  std::string out;
  for (const auto& p : pieces()) out.append(p.view());
  return out;
}

Command make_command(std::initializer_list<std::string_view> args) {
  Command c(args.size());
  for (auto a : args) c.arg(a);
  return c;
}

}  // namespace patchbay::redis
