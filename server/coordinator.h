// Runs the Scheduler on one Boost.Asio strand with its own thread, plus a
// periodic Tick. gRPC handlers hand work to the scheduler through Post(),
// so the scheduler itself needs no locks. Asio stays out of this header.
#pragma once

#include <functional>
#include <memory>

#include "absl/status/status.h"
#include "server/clock.h"
#include "server/scheduler.h"
#include "storage/store.h"

namespace qsweep {

struct CoordinatorOptions {
  SchedulerOptions scheduler;
  // Real-time period of Scheduler::Tick (lease expiry, long-poll deadlines).
  // 0 = never tick by itself (tests call RunSync(Tick) after moving a fake
  // clock). Default: 250 ms.
  int64_t tick_interval_ms = 250;
  // Group commit: at most this many posted calls run as one batch, their
  // store writes in one transaction (Store::BeginBatch). Default: 256.
  int max_batch = 256;
};

// Thread-safe: Post and RunSync may be called from any thread.
class Coordinator {
 public:
  // `store` and `clock` are not owned and must outlive the coordinator.
  Coordinator(Store& store, Clock& clock, CoordinatorOptions options = {});
  ~Coordinator();  // Calls Stop().

  // Recovers the scheduler from the store and starts the strand's thread.
  absl::Status Start();

  // Runs `fn` on the strand later. `fn` must not block. Calls posted while
  // the strand is busy run together as one group commit: their writes go to
  // the store in one transaction (one fsync), committed after the last.
  void Post(std::function<void(Scheduler&)> fn);

  // On the strand only (inside a posted `fn`, a Lease callback, ...): runs
  // `ack` once what the strand has written so far is durable, with OK, or
  // with UNAVAILABLE when the group commit failed (then nothing of it was
  // stored and the scheduler has reloaded its state from the store). Answer
  // a caller only from here, never before: that is what keeps
  // synchronous = FULL's promise with several calls per transaction.
  void Ack(std::function<void(const absl::Status&)> ack);

  // `fn` runs on the strand after every batch, once its writes are committed
  // (or the batch failed and the scheduler was reloaded from the store), and
  // before the batch's acknowledgements: WatchSweep's feeds take the
  // scheduler's changed jobs here (server/sweep_watch.h). Must not block.
  // Call before Start().
  void SetAfterCommit(std::function<void(Scheduler&)> fn);

  // Runs `fn` on the strand and waits for it and its group commit. Never call
  // it from the strand.
  void RunSync(std::function<void(Scheduler&)> fn);

  // Answers waiting long-polls, stops the tick and joins the thread. Posted
  // work not yet run is dropped. Idempotent.
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace qsweep
