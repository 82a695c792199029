#include "server/sweep_watch.h"

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"
#include "common/limits.h"
#include "server/grpc_status_util.h"
#include "server/job_config.h"
#include "server/job_query.h"

namespace qsweep {
namespace {

void Count(v1::SweepSummary& s, v1::JobState state, int32_t d) {
  switch (state) {
    case v1::PENDING:
      s.set_pending(s.pending() + d);
      break;
    case v1::LEASED:
      s.set_leased(s.leased() + d);
      break;
    case v1::RUNNING:
      s.set_running(s.running() + d);
      break;
    case v1::SUCCEEDED:
      s.set_succeeded(s.succeeded() + d);
      break;
    case v1::FAILED:
      s.set_failed(s.failed() + d);
      break;
    case v1::CANCELLED:
      s.set_cancelled(s.cancelled() + d);
      break;
    default:
      break;
  }
}

}  // namespace

WatchHub::WatchHub(std::function<void()> request_publish)
    : request_publish_(std::move(request_publish)) {}

void WatchHub::Subscribe(const std::string& sweep_id, SweepWatcher* watcher) {
  bool ask = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto [it, added] = feeds_.try_emplace(sweep_id);
    it->second.watchers.insert(watcher);
    if (closed_ || it->second.ready) watcher->Wake();
    ask = added && !closed_;
  }
  changed_.notify_all();
  if (ask) request_publish_();
}

void WatchHub::Unsubscribe(const std::string& sweep_id, SweepWatcher* watcher) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = feeds_.find(sweep_id);
  if (it == feeds_.end()) return;
  it->second.watchers.erase(watcher);
  if (it->second.watchers.empty()) feeds_.erase(it);
  changed_.notify_all();
}

void WatchHub::Put(Feed& feed, const v1::Job& job, uint64_t version) {
  auto listed = std::make_shared<const v1::Job>(ListedJob(job));
  auto [it, added] = feed.jobs.try_emplace(job.id());
  if (!added) {
    Count(feed.summary, it->second.job->state(), -1);
    feed.log.erase({it->second.version, job.id()});
  }
  Count(feed.summary, listed->state(), +1);
  it->second = {version, std::move(listed)};
  feed.log.insert({version, job.id()});
}

void WatchHub::Publish(Scheduler& scheduler) {
  const std::vector<std::string> changed = scheduler.TakeChangedJobs();
  std::lock_guard<std::mutex> lock(mu_);
  if (feeds_.empty() || closed_) return;
  std::set<Feed*> touched;
  for (const std::string& id : changed) {
    const v1::Job* job = scheduler.FindJob(id);
    if (!job) continue;
    auto f = feeds_.find(job->sweep_id());
    if (f == feeds_.end() || !f->second.ready) continue;  // a feed not built takes it below
    Feed& feed = f->second;
    if (touched.insert(&feed).second) ++feed.version;
    Put(feed, *job, feed.version);
  }
  for (auto& [sweep_id, feed] : feeds_) {
    if (feed.ready) continue;
    // Built from the scheduler's memory, which is now exactly what is stored.
    feed.ready = true;
    touched.insert(&feed);
    const v1::Sweep* sweep = scheduler.FindSweep(sweep_id);
    if (!sweep) {
      feed.status = absl::NotFoundError(absl::StrCat("no sweep '", sweep_id, "'"));
      continue;
    }
    feed.version = 1;
    *feed.summary.mutable_sweep() = ListedSweep(*sweep);
    for (const v1::Job* job : scheduler.JobsOfSweep(sweep_id)) Put(feed, *job, feed.version);
  }
  for (Feed* feed : touched)
    for (SweepWatcher* w : feed->watchers) w->Wake();
}

void WatchHub::Close() {
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_) return;
  closed_ = true;
  for (auto& [id, feed] : feeds_)
    for (SweepWatcher* w : feed.watchers) w->Wake();
}

WatchHub::Look WatchHub::Read(const std::string& sweep_id, uint64_t since) const {
  Look look;
  {
    std::lock_guard<std::mutex> lock(mu_);
    look.closed = closed_;
    if (closed_) return look;
    auto f = feeds_.find(sweep_id);
    if (f == feeds_.end()) {
      look.ready = true;
      look.status = absl::InternalError(absl::StrCat("sweep '", sweep_id, "' is not watched"));
      return look;
    }
    const Feed& feed = f->second;
    look.ready = feed.ready;
    look.status = feed.status;
    if (!feed.ready || !feed.status.ok()) return look;
    look.version = feed.version;
    look.summary = feed.summary;
    for (auto it = feed.log.lower_bound({since + 1, std::string()}); it != feed.log.end(); ++it)
      look.jobs.push_back(feed.jobs.at(it->second).job);
  }
  std::sort(look.jobs.begin(), look.jobs.end(),
            [](const auto& a, const auto& b) { return a->index() < b->index(); });
  return look;
}

size_t WatchHub::feeds() const {
  std::lock_guard<std::mutex> lock(mu_);
  return feeds_.size();
}

size_t WatchHub::WatchersLocked() const {
  size_t n = 0;
  for (const auto& [id, feed] : feeds_) n += feed.watchers.size();
  return n;
}

size_t WatchHub::watchers() const {
  std::lock_guard<std::mutex> lock(mu_);
  return WatchersLocked();
}

bool WatchHub::WaitForWatchers(size_t n, std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> lock(mu_);
  return changed_.wait_for(lock, timeout, [&] { return WatchersLocked() == n; });
}

WatchReactor::WatchReactor(WatchHub& hub, WorkPool& pool, std::string sweep_id, int32_t page_size)
    : hub_(hub),
      pool_(pool),
      sweep_id_(std::move(sweep_id)),
      page_size_(static_cast<size_t>(PageSize(page_size, kMaxJobsPerPage))) {
  hub_.Subscribe(sweep_id_, this);  // may Wake() at once: operations started
                                    // before gRPC binds the reactor are queued
}

void WatchReactor::Wake() {
  std::lock_guard<std::mutex> lock(mu_);
  if (ended_) return;
  if (busy_) {
    dirty_ = true;  // looked at when the current look is written
    return;
  }
  busy_ = true;
  pool_.Post([this] { Look(); });
}

void WatchReactor::OnCancel() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    cancelled_ = true;
    if (busy_ || ended_) return;  // the turn's holder sees cancelled_
    ended_ = true;
  }
  Finish(grpc::Status(grpc::StatusCode::CANCELLED, "client left"));
}

void WatchReactor::OnDone() {
  hub_.Unsubscribe(sweep_id_, this);
  delete this;
}

void WatchReactor::End(const grpc::Status& status) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (ended_) return;
    ended_ = true;
  }
  Finish(status);  // the last use of `this`: OnDone may follow at once
}

void WatchReactor::Release() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!cancelled_) {
      if (!dirty_) {
        busy_ = false;
        return;
      }
      pool_.Post([this] { Look(); });  // keeps the turn
      return;
    }
  }
  End(grpc::Status(grpc::StatusCode::CANCELLED, "client left"));
}

void WatchReactor::Look() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    dirty_ = false;  // a wake from now on asks for another look
  }
  WatchHub::Look look = hub_.Read(sweep_id_, seen_);
  if (look.closed) {
    End(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the server is shutting down"));
    return;
  }
  if (!look.ready) {
    Release();  // woken again when the feed is built
    return;
  }
  if (!look.status.ok()) {
    End(ToGrpcStatus(look.status));
    return;
  }
  if (look.jobs.empty() && !first_) {
    Release();
    return;
  }
  first_ = false;
  seen_ = look.version;
  finished_sweep_ = SweepFinished(look.summary);
  changed_ = std::move(look.jobs);
  next_ = 0;
  *event_.mutable_summary() = std::move(look.summary);
  WriteNextEvent();
}

void WatchReactor::WriteNextEvent() {
  event_.clear_jobs();
  size_t bytes = event_.summary().ByteSizeLong();
  while (next_ < changed_.size() && static_cast<size_t>(event_.jobs_size()) < page_size_ &&
         (event_.jobs_size() == 0 || bytes < kMaxPageBytes)) {
    bytes += changed_[next_]->ByteSizeLong();
    *event_.add_jobs() = *changed_[next_++];
  }
  event_.set_more_jobs(next_ < changed_.size());
  StartWrite(&event_);
}

void WatchReactor::OnWriteDone(bool ok) {
  if (!ok) {
    End(grpc::Status(grpc::StatusCode::CANCELLED, "client left"));
    return;
  }
  if (next_ < changed_.size()) {
    WriteNextEvent();  // the rest of this look
    return;
  }
  changed_.clear();
  if (finished_sweep_) {
    End(grpc::Status::OK);
    return;
  }
  Release();
}

}  // namespace qsweep
