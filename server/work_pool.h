// A small fixed pool of threads for the server's slow work: sweep expansion,
// dataset preparation, large artifact reads and hashes, and building
// WatchSweep events. gRPC callback threads and the scheduler strand hand such
// work here and the RPC is finished from the pool when it is done, so neither
// ever waits for it (heartbeats and lease renewals keep their latency).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace qsweep {

class WorkPool {
 public:
  // Starts `threads` threads (at least 1). `name` shows in thread listings
  // (at most 15 characters are kept).
  WorkPool(int threads, std::string name);
  // Runs the tasks still queued, then joins the threads.
  ~WorkPool();
  WorkPool(const WorkPool&) = delete;
  WorkPool& operator=(const WorkPool&) = delete;

  // Runs `task` on one of the pool's threads, in posting order per thread.
  // Thread-safe; never blocks on the task.
  void Post(std::function<void()> task);

  // The pool whose thread calls this, or nullptr on any other thread.
  static const WorkPool* Current();

  // Tasks posted and not yet finished (for tests and diagnostics).
  int64_t pending() const;

 private:
  void Run();

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  int64_t unfinished_ = 0;
  bool stopping_ = false;
  const std::string name_;
  std::vector<std::thread> threads_;
};

}  // namespace qsweep
