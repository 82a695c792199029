// `qsweep data ...`: fetch, export, import, list and inspect datasets.
// Torch-free; links only the data module.
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace qsweep {

// Runs `qsweep data <args...>` (args are the words after `data`):
//   fetch jsc [--data-dir D] [--url U]
//   export NAME --split train|test [--format csv] -o FILE
//          [--synthetic-rows N] [--synthetic-seed S] [--data-dir D] [--source F]
//   import FILE.csv --name NAME [--label-column COL] [--data-dir D]
//   list [--data-dir D]
//   info NAME [--synthetic-rows N] [--synthetic-seed S] [--data-dir D] [--source F]
// Results go to `out`; an error is one line on `err`. Returns 0 on success,
// non-zero on any error (2 for a command-line error).
int RunDataCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

// Same, printing to std::cout / std::cerr.
int RunDataCommand(const std::vector<std::string>& args);

}  // namespace qsweep
