// The one name of the environment variable that points qsweep and
// qsweep-server at the qsweep-worker binary to run.
#pragma once

namespace qsweep {

inline constexpr char kWorkerBinaryEnv[] = "QSWEEP_WORKER_BIN";

}  // namespace qsweep
