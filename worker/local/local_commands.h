// The local commands the `qsweep` CLI hands to the worker binary, so that a
// local run and a service run are produced by one implementation:
//   train MODEL DATASET [--config F] [flags]   (MASE `ch train`)
//   test --load CKPT [DATASET] [flags]         (MASE `ch test`)
//   transform --config F --load CKPT           (MASE `ch transform`)
//   checkpoint export CKPT -o FILE             (state dict for PyTorch)
#pragma once

#include <string>
#include <vector>

namespace qsweep {

// `argv[0]` is the command name. Returns the process exit code; errors are one
// clear line on stderr.
int RunLocalCommand(const std::vector<std::string>& argv);

// True for the command names RunLocalCommand handles.
bool IsLocalCommand(const std::string& name);

}  // namespace qsweep
