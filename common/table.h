// Plain-text tables in the layouts of Python's `tabulate` (orgtbl, grid,
// simple, pretty), which MASE's reports use. Columns whose every non-empty cell
// parses as a number are right-aligned (floats on their decimal point); other
// columns are left-aligned. Cells may hold several lines (grid only).
#pragma once

#include <string>
#include <vector>

namespace qsweep {

enum class TableStyle { kOrgtbl, kGrid, kSimple, kPretty, kPlain };

struct Table {
  std::vector<std::string> headers;
  std::vector<std::vector<std::string>> rows;
};

// Renders `table`; no trailing newline. Rows shorter than the header are
// padded with empty cells.
std::string RenderTable(const Table& table, TableStyle style);

// Comma-separated rendering with RFC 4180 quoting; ends with a newline.
std::string RenderCsv(const Table& table);

}  // namespace qsweep
