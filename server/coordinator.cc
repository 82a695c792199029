// Boost 1.74 Asio with C++20 needs <utility> first (std::exchange).
#include "server/coordinator.h"

#include <boost/asio.hpp>
#include <future>
#include <optional>
#include <thread>
#include <utility>

namespace qsweep {

namespace asio = boost::asio;

struct Coordinator::Impl {
  Impl(Store& store, Clock& clock, CoordinatorOptions o)
      : options(o),
        scheduler(store, clock, o.scheduler),
        strand(asio::make_strand(io)),
        timer(strand) {}

  void ScheduleTick() {
    if (options.tick_interval_ms <= 0) return;
    timer.expires_after(std::chrono::milliseconds(options.tick_interval_ms));
    timer.async_wait([this](const boost::system::error_code& ec) {
      if (ec) return;  // cancelled at Stop()
      scheduler.Tick();
      ScheduleTick();
    });
  }

  CoordinatorOptions options;
  Scheduler scheduler;  // used only on `strand`
  asio::io_context io;
  asio::strand<asio::io_context::executor_type> strand;
  asio::steady_timer timer;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::thread thread;
  bool started = false;
  bool stopped = false;
};

Coordinator::Coordinator(Store& store, Clock& clock, CoordinatorOptions options)
    : impl_(std::make_unique<Impl>(store, clock, options)) {}

Coordinator::~Coordinator() { Stop(); }

absl::Status Coordinator::Start() {
  // Recovery runs before the thread exists, so nothing else can race it.
  absl::Status s = impl_->scheduler.Recover();
  if (!s.ok()) return s;
  impl_->work.emplace(impl_->io.get_executor());
  asio::post(impl_->strand, [impl = impl_.get()] { impl->ScheduleTick(); });
  impl_->thread = std::thread([impl = impl_.get()] { impl->io.run(); });
  impl_->started = true;
  return absl::OkStatus();
}

void Coordinator::Post(std::function<void(Scheduler&)> fn) {
  asio::post(impl_->strand, [impl = impl_.get(), fn = std::move(fn)] { fn(impl->scheduler); });
}

void Coordinator::RunSync(std::function<void(Scheduler&)> fn) {
  std::promise<void> done;
  Post([&](Scheduler& s) {
    fn(s);
    done.set_value();
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
