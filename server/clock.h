// Time as an injected dependency: the scheduler reads the time only through
// Clock, so tests drive lease expiry with a fake clock and never sleep.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace qsweep {

// Thread-safe: every method may be called from any thread.
class Clock {
 public:
  virtual ~Clock() = default;
  // Milliseconds since the Unix epoch: for timestamps shown and stored. It may
  // step (NTP, an administrator): never measure durations with it.
  virtual int64_t NowMs() = 0;
  // Milliseconds since an arbitrary start, never going back and unaffected by
  // steps of the wall clock: for deadlines (lease expiry, time limits, waits).
  virtual int64_t MonotonicMs() = 0;
};

class SystemClock final : public Clock {
 public:
  int64_t NowMs() override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  int64_t MonotonicMs() override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
};

// A clock that moves only when told to.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(int64_t start_ms = 1'700'000'000'000) : now_(start_ms), mono_(1'000'000) {}
  int64_t NowMs() override { return now_.load(); }
  int64_t MonotonicMs() override { return mono_.load(); }
  // Time passes: both clocks move.
  void AdvanceMs(int64_t ms) {
    now_ += ms;
    mono_ += ms;
  }
  // The wall clock is set (either way); no time passes.
  void StepWallMs(int64_t ms) { now_ += ms; }

 private:
  std::atomic<int64_t> now_;
  std::atomic<int64_t> mono_;
};

}  // namespace qsweep
