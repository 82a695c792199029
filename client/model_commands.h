// `qsweep models` and `qsweep model show`: the zoo and custom model files,
// as tables or JSON. Torch-free.
#pragma once

#include <string>
#include <vector>

namespace qsweep {

int RunModelsCommand(const std::vector<std::string>& args);
int RunModelCommand(const std::vector<std::string>& args);

}  // namespace qsweep
