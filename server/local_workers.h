// Child worker processes started by `qsweep-server --local-workers N` (and
// `qsweep up`): each is `qsweep-worker --server ADDR --device cpu --slots 1
// --token-file FILE`.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace qsweep {

// The qsweep-worker binary: $QSWEEP_WORKER_BIN, else next to this program
// (same folder, or ../worker/ in a build tree), else "qsweep-worker" on PATH.
std::string FindWorkerBinary();

struct LocalWorkersOptions {
  std::string worker_binary;   // required
  std::string server_address;  // required, e.g. "127.0.0.1:7420"
  int count = 1;
  // Slots per worker. Default: 1.
  int slots = 1;
  // The worker token file each worker is given (--token-file). Default: "" =
  // the workers' own default.
  std::string token_file;
  // The workers' --log-level (the server passes its own). Default: "" = the
  // workers' own default.
  std::string log_level;
};

class LocalWorkers {
 public:
  // Starts the processes. INTERNAL naming the binary if one cannot start.
  static absl::StatusOr<LocalWorkers> Start(const LocalWorkersOptions& options);
  // Sends SIGTERM (workers hand back their jobs) and waits for all of them.
  void StopAll();
  const std::vector<pid_t>& pids() const { return pids_; }

 private:
  std::vector<pid_t> pids_;
};

}  // namespace qsweep
