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
// padded with empty cells. Cells go through TerminalSafe (terminal_text.h):
// a control character in a cell is shown escaped (\x1b), never acted on.
std::string RenderTable(const Table& table, TableStyle style);

// Comma-separated rendering with RFC 4180 quoting; ends with a newline. Cells
// go through TerminalSafe (newlines kept inside quotes), and a cell that is
// not a number but starts with '=', '+', '-' or '@' gets a leading "'" so
// that a spreadsheet shows it as text instead of running it as a formula.
std::string RenderCsv(const Table& table);

}  // namespace qsweep
