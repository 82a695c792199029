// qsweep-worker in local mode: runs one local command (train, test,
// checkpoint export) and exits.
#include <cstdio>
#include <string>
#include <vector>

#include "worker/local/local_commands.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || !qsweep::IsLocalCommand(args[0])) {
    std::fprintf(stderr, "usage: qsweep-worker train|test|checkpoint ...\n");
    return 2;
  }
  return qsweep::RunLocalCommand(args);
}
