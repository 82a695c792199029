#include "server/work_pool.h"

#include <pthread.h>

#include <algorithm>
#include <utility>

namespace qsweep {
namespace {
thread_local const WorkPool* current_pool = nullptr;
}  // namespace

WorkPool::WorkPool(int threads, std::string name) : name_(std::move(name)) {
  for (int i = 0; i < std::max(1, threads); ++i) threads_.emplace_back([this] { Run(); });
}

WorkPool::~WorkPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void WorkPool::Post(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(std::move(task));
    ++unfinished_;
  }
  cv_.notify_one();
}

const WorkPool* WorkPool::Current() { return current_pool; }

int64_t WorkPool::pending() const {
  std::lock_guard<std::mutex> lock(mu_);
  return unfinished_;
}

void WorkPool::Run() {
  current_pool = this;
  pthread_setname_np(pthread_self(), name_.substr(0, 15).c_str());
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and nothing left to run
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    task();
    std::lock_guard<std::mutex> lock(mu_);
    --unfinished_;
  }
}

}  // namespace qsweep
