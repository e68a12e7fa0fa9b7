#include "server/session_server.h"

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace server {
namespace {

struct Session {
  uint64_t id;
  char peer[48];
};

struct Buffer {
  size_t length;
  char bytes[4000];
};

std::unique_ptr<poolguard::Pool> MakePool(const char* name, size_t size, size_t min_free) {
  poolguard::PoolOptions options;
  options.name = name;
  options.object_size = size;
  options.alignment = alignof(std::max_align_t);
  options.min_free = min_free;
  absl::StatusOr<std::unique_ptr<poolguard::Pool>> pool = poolguard::Pool::Create(options);
  if (!pool.ok()) {
    std::fprintf(stderr, "server: %s\n", std::string(pool.status().message()).c_str());
    std::abort();
  }
  return *std::move(pool);
}

// A queue of pointers between threads (the server's own, not poolguard's).
class Queue {
 public:
  void Push(void* item) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      items_.push_back(item);
    }
    cv_.notify_one();
  }
  // nullptr once closed and empty.
  void* Pop() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return closed_ || !items_.empty(); });
    if (items_.empty()) return nullptr;
    void* item = items_.front();
    items_.pop_front();
    return item;
  }
  void Close() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      closed_ = true;
    }
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<void*> items_;
  bool closed_ = false;
};

}  // namespace

RunResult Run(const RunOptions& options) {
  std::unique_ptr<poolguard::Pool> sessions = MakePool("sessions", sizeof(Session), 16);
  std::unique_ptr<poolguard::Pool> buffers = MakePool("reply buffers", sizeof(Buffer), 8);
  std::atomic<uint64_t> next_request{0};
  std::atomic<uint64_t> bytes_sent{0};
  Queue replies;
  std::atomic<bool> done{false};

  std::thread writer([&] {
    while (void* item = replies.Pop()) {
      auto* buffer = static_cast<Buffer*>(item);
      bytes_sent.fetch_add(buffer->length, std::memory_order_relaxed);
      buffers->Free(buffer);  // Freed here, allocated by a worker.
    }
  });
  std::thread janitor([&] {
    while (!done.load()) {
      poolguard::GcAll();
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  });
  std::vector<std::thread> workers;
  for (int w = 0; w < options.workers; ++w) {
    workers.emplace_back([&] {
      for (;;) {
        const uint64_t request = next_request.fetch_add(1);
        if (request >= options.requests) break;
        auto* session = static_cast<Session*>(sessions->Alloc());
        auto* reply = static_cast<Buffer*>(buffers->Alloc());
        if (session == nullptr || reply == nullptr) std::abort();
        session->id = request;
        std::snprintf(session->peer, sizeof(session->peer), "10.0.%u.%u:443",
                      static_cast<unsigned>(request / 256 % 256),
                      static_cast<unsigned>(request % 256));
        reply->length = static_cast<size_t>(std::snprintf(
            reply->bytes, sizeof(reply->bytes), "HTTP/1.1 200 OK\r\nX-Session: %llu\r\n",
            static_cast<unsigned long long>(session->id)));
        sessions->Free(session);
        replies.Push(reply);
      }
    });
  }
  for (std::thread& worker : workers) worker.join();
  replies.Close();
  writer.join();
  done.store(true);
  janitor.join();

  RunResult result;
  result.requests = options.requests;
  result.bytes_sent = bytes_sent.load();
  result.sessions = sessions->Stats();
  result.buffers = buffers->Stats();
  result.dump = poolguard::DumpPools();
  return result;
}

}  // namespace server
