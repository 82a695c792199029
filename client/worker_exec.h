// Hands a local command to the worker binary (qsweep-worker), found through
// $QSWEEP_WORKER_BIN (common/worker_binary.h), next to this executable, or on PATH.
#pragma once

#include <string>
#include <vector>

namespace qsweep {

// Path of the worker binary, or "" if none is found.
std::string FindWorkerBinary(const char* argv0);

// Replaces this process with `qsweep-worker <args...>`. Returns only on
// failure, with an exit code after printing one error line.
int ExecWorker(const char* argv0, const std::vector<std::string>& args);

}  // namespace qsweep
