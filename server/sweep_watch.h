// WatchSweep driven by change notifications.
//
// WatchHub keeps one feed per watched sweep: the listed form of each of its
// jobs with the version at which it last changed, and the summary counts. The
// coordinator calls Publish() on the scheduler strand after every batch has
// committed (group commit included), with the ids of the jobs the batch
// stored; Publish() copies those jobs into the feeds of watched sweeps, bumps
// each touched feed's version and wakes its watchers. A feed is built from the
// scheduler's memory at the first Publish() after its first watcher
// subscribed, so it starts from committed state and every later change reaches
// it in commit order; it is dropped with its last watcher.
//
// A watcher (WatchReactor) never runs on the strand: a wake only marks it
// dirty and posts it to a WorkPool, where it takes the jobs that changed since
// the version it last sent (pointers, under the hub's lock) and serializes its
// events after releasing the lock. Wakes that arrive while it is writing are
// coalesced into one look. Sweeps nobody watches cost nothing but the list of
// changed ids.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "qsweep/v1/experiments.pb.h"
#include "server/scheduler.h"
#include "server/work_pool.h"

namespace qsweep {

// Something woken when a watched sweep changes. Wake() is called with the
// hub's lock held: it must not block and must not call the hub.
class SweepWatcher {
 public:
  virtual ~SweepWatcher() = default;
  virtual void Wake() = 0;
};

class WatchHub {
 public:
  // `request_publish` is called (without the hub's lock) when a sweep gets
  // its first watcher: it must make the coordinator run a batch soon (e.g.
  // Coordinator::Post of a no-op), whose Publish() builds the feed.
  explicit WatchHub(std::function<void()> request_publish);

  // Adds `watcher` to the sweep's feed. It is woken once the feed is ready
  // (at once if it already is), then at every change of the sweep.
  void Subscribe(const std::string& sweep_id, SweepWatcher* watcher);
  // After this returns, `watcher` is never woken again.
  void Unsubscribe(const std::string& sweep_id, SweepWatcher* watcher);

  // On the strand, after a batch committed (or failed, and the scheduler was
  // reloaded from the store): takes the scheduler's changed jobs into the
  // feeds, builds the feeds asked for, and wakes the watchers concerned.
  void Publish(Scheduler& scheduler);

  // Wakes every watcher for the last time: their reads answer `closed`
  // (server shutdown). Idempotent.
  void Close();

  struct Look {
    bool closed = false;       // the server is shutting down
    bool ready = false;        // false: the feed is not built yet (wait for a wake)
    absl::Status status;       // not OK: the sweep cannot be watched (e.g. NOT_FOUND)
    uint64_t version = 0;      // the feed's version this look covers
    v1::SweepSummary summary;  // listed sweep and counts
    std::vector<std::shared_ptr<const v1::Job>> jobs;  // changed after `since`, by index
  };
  // The jobs of the sweep that changed after version `since` (every job for
  // since = 0) and the current summary. Copies only pointers under the lock.
  Look Read(const std::string& sweep_id, uint64_t since) const;

  // Watched sweeps and subscribed watchers now (for tests and diagnostics).
  size_t feeds() const;
  size_t watchers() const;
  // Waits until exactly `n` watchers are subscribed; false if `timeout`
  // passed first (for tests: a subscription freed is an event to wait for).
  bool WaitForWatchers(size_t n, std::chrono::milliseconds timeout) const;

 private:
  struct Feed {
    bool ready = false;
    absl::Status status;
    uint64_t version = 0;
    v1::SweepSummary summary;  // sweep + counts
    struct Entry {
      uint64_t version = 0;
      std::shared_ptr<const v1::Job> job;  // listed
    };
    std::map<std::string, Entry> jobs;               // by job id
    std::set<std::pair<uint64_t, std::string>> log;  // (version, job id) of jobs
    std::set<SweepWatcher*> watchers;
  };
  void Put(Feed& feed, const v1::Job& job, uint64_t version);

  const std::function<void()> request_publish_;
  size_t WatchersLocked() const;

  mutable std::mutex mu_;
  mutable std::condition_variable changed_;  // watchers subscribed or not
  std::map<std::string, Feed> feeds_;        // by sweep id
  bool closed_ = false;
};

// Streams a sweep's summary and jobs (see WatchSweepEvent): the first look
// sends every job, each later look the jobs that changed since the previous
// one, `page_size` jobs at most per event (and about kMaxPageBytes), more_jobs
// set on all but the last event of a look. Ends after the look that finds the
// sweep finished, when the client leaves (the subscription is dropped at
// once), or UNAVAILABLE at server shutdown. Deletes itself when done.
//
// Threads: looks are built on `pool`; writes complete on gRPC threads. At
// most one look is being built or written at a time (busy_), and Finish is
// called only by whoever holds that turn, or by OnCancel while nobody does,
// so the reactor is never deleted under a pending task or write.
class WatchReactor final : public grpc::ServerWriteReactor<v1::WatchSweepEvent>,
                           public SweepWatcher {
 public:
  WatchReactor(WatchHub& hub, WorkPool& pool, std::string sweep_id, int32_t page_size);
  void Wake() override;
  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  void Look();            // on the pool, holding the turn
  void WriteNextEvent();  // holding the turn
  // Gives the turn back, or takes another look if woken meanwhile.
  void Release();
  // Ends the call; the caller holds the turn or nobody does.
  void End(const grpc::Status& status);

  WatchHub& hub_;
  WorkPool& pool_;
  const std::string sweep_id_;
  const size_t page_size_;
  // Owned by the turn's holder.
  uint64_t seen_ = 0;  // feed version sent so far
  bool first_ = true;
  bool finished_sweep_ = false;
  v1::WatchSweepEvent event_;
  std::vector<std::shared_ptr<const v1::Job>> changed_;
  size_t next_ = 0;
  // Guarded by mu_.
  std::mutex mu_;
  bool busy_ = false;   // a look is queued, being built or written
  bool dirty_ = false;  // woken while busy
  bool cancelled_ = false;
  bool ended_ = false;  // Finish called or about to be
};

}  // namespace qsweep
