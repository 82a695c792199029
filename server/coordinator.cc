// Boost 1.74 Asio with C++20 needs <utility> first (std::exchange).
#include "server/coordinator.h"

#include <boost/asio.hpp>
#include <deque>
#include <future>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace qsweep {

namespace asio = boost::asio;

struct Coordinator::Impl {
  Impl(Store& s, Clock& c, CoordinatorOptions o)
      : options(o), store(s), clock(c), strand(asio::make_strand(io)), timer(strand) {
    scheduler.emplace(store, clock, options.scheduler);
  }

  void ScheduleTick() {
    if (options.tick_interval_ms <= 0) return;
    timer.expires_after(std::chrono::milliseconds(options.tick_interval_ms));
    timer.async_wait([this](const boost::system::error_code& ec) {
      if (ec) return;  // cancelled at Stop()
      RunBatch({[](Scheduler& s) { s.Tick(); }});
      ScheduleTick();
    });
  }

  // On the strand: runs up to max_batch queued calls as one group commit,
  // and posts itself again while calls are left.
  void Drain() {
    std::vector<std::function<void(Scheduler&)>> work;
    {
      std::lock_guard<std::mutex> lock(mu);
      const size_t n = std::min(queue.size(), static_cast<size_t>(std::max(1, options.max_batch)));
      for (size_t i = 0; i < n; ++i) {
        work.push_back(std::move(queue.front()));
        queue.pop_front();
      }
      drain_posted = !queue.empty();
      if (drain_posted) asio::post(strand, [this] { Drain(); });
    }
    RunBatch(std::move(work));
  }

  // Runs `work` with the store's writes in one transaction; acknowledgements
  // queued with Ack() run after it committed (or with its error).
  void RunBatch(std::vector<std::function<void(Scheduler&)>> work) {
    in_batch = store.BeginBatch().ok();  // if not: each write commits itself
    for (auto& fn : work) fn(*scheduler);
    absl::Status committed = absl::OkStatus();
    if (in_batch) {
      committed = store.EndBatch();
      in_batch = false;
    }
    std::vector<std::function<void(const absl::Status&)>> ready = std::move(acks);
    acks.clear();
    if (!committed.ok()) {
      // A full or read-only database keeps its own code (the store names it);
      // anything else is a passing failure the caller may retry.
      const absl::StatusCode code =
          absl::IsResourceExhausted(committed) || absl::IsFailedPrecondition(committed)
              ? committed.code()
              : absl::StatusCode::kUnavailable;
      committed = absl::Status(
          code, absl::StrCat("the coordinator could not store this change: ", committed.message()));
      // The scheduler's memory is ahead of the store: reload it. Waiting
      // Lease calls are answered (empty) first; their callers ask again.
      scheduler->CloseWaiters();
      scheduler.emplace(store, clock, options.scheduler);
      scheduler->Recover().IgnoreError();  // a store that cannot be read fails later calls
      ++batches_failed;
    }
    if (after_commit)
      after_commit(*scheduler);
    else
      scheduler->TakeChangedJobs();  // nobody takes them: do not let them pile up
    for (auto& ack : ready) ack(committed);
  }

  CoordinatorOptions options;
  Store& store;
  Clock& clock;
  std::optional<Scheduler> scheduler;  // used only on `strand`
  asio::io_context io;
  asio::strand<asio::io_context::executor_type> strand;
  asio::steady_timer timer;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::thread thread;
  bool started = false;
  bool stopped = false;
  // Calls posted and not yet run; guarded by mu.
  std::mutex mu;
  std::deque<std::function<void(Scheduler&)>> queue;
  bool drain_posted = false;
  // On the strand only.
  bool in_batch = false;
  std::vector<std::function<void(const absl::Status&)>> acks;
  int64_t batches_failed = 0;
  std::function<void(Scheduler&)> after_commit;  // set before Start
};

Coordinator::Coordinator(Store& store, Clock& clock, CoordinatorOptions options)
    : impl_(std::make_unique<Impl>(store, clock, options)) {}

Coordinator::~Coordinator() { Stop(); }

absl::Status Coordinator::Start() {
  // Recovery runs before the thread exists, so nothing else can race it.
  absl::Status s = impl_->scheduler->Recover();
  if (!s.ok()) return s;
  impl_->work.emplace(impl_->io.get_executor());
  asio::post(impl_->strand, [impl = impl_.get()] { impl->ScheduleTick(); });
  impl_->thread = std::thread([impl = impl_.get()] { impl->io.run(); });
  impl_->started = true;
  return absl::OkStatus();
}

void Coordinator::Post(std::function<void(Scheduler&)> fn) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->queue.push_back(std::move(fn));
  if (!impl_->drain_posted) {
    impl_->drain_posted = true;
    asio::post(impl_->strand, [impl = impl_.get()] { impl->Drain(); });
  }
}

void Coordinator::Ack(std::function<void(const absl::Status&)> fn) {
  if (impl_->in_batch)
    impl_->acks.push_back(std::move(fn));
  else
    fn(absl::OkStatus());
}

void Coordinator::SetAfterCommit(std::function<void(Scheduler&)> fn) {
  impl_->after_commit = std::move(fn);
}

void Coordinator::RunSync(std::function<void(Scheduler&)> fn) {
  std::promise<void> done;
  Post([&](Scheduler& s) {
    fn(s);
    Ack([&](const absl::Status&) { done.set_value(); });
  });
  done.get_future().wait();
}

void Coordinator::Stop() {
  if (!impl_ || !impl_->started || impl_->stopped) return;
  impl_->stopped = true;
  RunSync([impl = impl_.get()](Scheduler& s) {
    s.CloseWaiters();
    impl->timer.cancel();
  });
  impl_->work.reset();
  impl_->io.stop();
  impl_->thread.join();
}

}  // namespace qsweep
