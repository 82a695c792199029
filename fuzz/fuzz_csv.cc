// CSV sources for `qsweep data import`: any bytes, read with the automatic
// layout and with named columns and a fixed class order. The importer may
// refuse (INVALID_ARGUMENT naming the line and column); it may not crash or
// trip a sanitizer, and what it accepts has consistent shapes.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "absl/status/status.h"
#include "fuzz/fuzz_util.h"
#include "worker/core/data/csv.h"

namespace {

void Check(const qsweep::CsvTableOptions& options) {
  auto t = qsweep::ReadCsvTable(qsweep::fuzz::ScratchPath(), options);
  if (!t.ok()) {
    if (t.status().code() != absl::StatusCode::kInvalidArgument) std::abort();
    return;
  }
  if (t->x.size() != static_cast<size_t>(t->rows * t->n_features) ||
      t->y.size() != static_cast<size_t>(t->rows) ||
      t->feature_names.size() != static_cast<size_t>(t->n_features)) {
    std::abort();
  }
  for (int64_t y : t->y)
    if (y < 0 || y >= static_cast<int64_t>(t->class_names.size())) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > (1u << 20)) return -1;
  qsweep::fuzz::WriteScratch(data, size);
  Check({});
  qsweep::CsvTableOptions named;
  named.feature_columns = {"a|x", "b"};
  named.label_column = "class";
  named.class_order = {"g", "q", "w"};
  Check(named);
  return 0;
}
