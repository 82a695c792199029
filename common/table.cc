#include "common/table.h"

#include <algorithm>
#include <cstdlib>
#include <sstream>

#include "common/terminal_text.h"

namespace qsweep {
namespace {

constexpr size_t kMinPadding = 2;  // tabulate's MIN_PADDING around headers

bool IsNumber(const std::string& s) {
  if (s.empty()) return false;
  char* end = nullptr;
  std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size();
}

std::vector<std::string> SplitLines(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string line;
  while (std::getline(ss, line)) out.push_back(line);
  if (out.empty()) out.push_back("");
  return out;
}

struct Column {
  bool numeric = true;
  size_t width = 0;
  size_t frac = 0;  // widest fractional part ('.' included) for decimal alignment
};

size_t FracLen(const std::string& s) {
  auto dot = s.find('.');
  return dot == std::string::npos ? 0 : s.size() - dot;
}

// Pads numbers on the right so that decimal points line up.
std::string DecimalPad(const std::string& s, const Column& c) {
  return s + std::string(c.frac - FracLen(s), ' ');
}

std::string Align(const std::string& s, size_t width, char how) {
  if (s.size() >= width) return s;
  size_t gap = width - s.size();
  if (how == 'r') return std::string(gap, ' ') + s;
  if (how == 'c') return std::string(gap / 2, ' ') + s + std::string(gap - gap / 2, ' ');
  return s + std::string(gap, ' ');
}

}  // namespace

std::string RenderTable(const Table& raw, TableStyle style) {
  // Cells are data: control characters are shown escaped, never acted on.
  Table table;
  for (const auto& h : raw.headers) table.headers.push_back(TerminalSafe(h));
  for (const auto& r : raw.rows) {
    table.rows.emplace_back();
    for (const auto& cell : r) table.rows.back().push_back(TerminalSafe(cell));
  }
  const size_t ncol = table.headers.size();
  std::vector<Column> cols(ncol);
  std::vector<std::vector<std::string>> rows = table.rows;
  for (auto& r : rows) r.resize(ncol);
  for (size_t c = 0; c < ncol; ++c) {
    bool any = false;
    for (auto& r : rows) {
      if (r[c].empty()) continue;
      any = true;
      if (!IsNumber(r[c])) cols[c].numeric = false;
    }
    if (!any) cols[c].numeric = false;
    if (cols[c].numeric)
      for (auto& r : rows) cols[c].frac = std::max(cols[c].frac, FracLen(r[c]));
  }
  for (size_t c = 0; c < ncol; ++c) {
    size_t w = 0;
    for (auto& r : rows) {
      std::string cell = cols[c].numeric ? DecimalPad(r[c], cols[c]) : r[c];
      for (auto& line : SplitLines(cell)) w = std::max(w, line.size());
    }
    bool padded = style != TableStyle::kPlain && style != TableStyle::kPretty;
    size_t hw = table.headers[c].size() + (padded ? kMinPadding : 0);
    cols[c].width = std::max(w, hw);
  }
  auto cell_text = [&](const std::string& s, size_t c) {
    return cols[c].numeric && !s.empty() ? DecimalPad(s, cols[c]) : s;
  };
  const char cell_align_default = 'l';
  auto align_of = [&](size_t c, bool header) {
    if (style == TableStyle::kPretty) return 'c';
    if (cols[c].numeric) return 'r';
    (void)header;
    return cell_align_default;
  };

  std::ostringstream out;
  auto rule = [&](char fill, char corner_edge, char corner_mid) {
    out << corner_edge;
    for (size_t c = 0; c < ncol; ++c) {
      out << std::string(cols[c].width + 2, fill) << (c + 1 < ncol ? corner_mid : corner_edge);
    }
    out << "\n";
  };
  // Emits one logical row (possibly several physical lines).
  auto emit = [&](const std::vector<std::string>& cells, bool header, const char* sep,
                  const char* edge_l, const char* edge_r) {
    std::vector<std::vector<std::string>> lines(ncol);
    size_t height = 1;
    for (size_t c = 0; c < ncol; ++c) {
      lines[c] = SplitLines(header ? cells[c] : cell_text(cells[c], c));
      height = std::max(height, lines[c].size());
    }
    for (size_t h = 0; h < height; ++h) {
      out << edge_l;
      for (size_t c = 0; c < ncol; ++c) {
        std::string text = h < lines[c].size() ? lines[c][h] : "";
        out << Align(text, cols[c].width, align_of(c, header));
        if (c + 1 < ncol) out << sep;
      }
      out << edge_r << "\n";
    }
  };

  switch (style) {
    case TableStyle::kOrgtbl: {
      emit(table.headers, true, " | ", "| ", " |");
      out << "|";
      for (size_t c = 0; c < ncol; ++c)
        out << std::string(cols[c].width + 2, '-') << (c + 1 < ncol ? "+" : "|");
      out << "\n";
      for (auto& r : rows) emit(r, false, " | ", "| ", " |");
      break;
    }
    case TableStyle::kGrid:
    case TableStyle::kPretty: {
      rule('-', '+', '+');
      emit(table.headers, true, " | ", "| ", " |");
      rule(style == TableStyle::kGrid ? '=' : '-', '+', '+');
      for (size_t i = 0; i < rows.size(); ++i) {
        emit(rows[i], false, " | ", "| ", " |");
        if (style == TableStyle::kGrid || i + 1 == rows.size()) rule('-', '+', '+');
      }
      if (rows.empty() && style == TableStyle::kPretty) {
      }
      break;
    }
    case TableStyle::kSimple: {
      emit(table.headers, true, "  ", "", "");
      for (size_t c = 0; c < ncol; ++c)
        out << std::string(cols[c].width, '-') << (c + 1 < ncol ? "  " : "");
      out << "\n";
      for (auto& r : rows) emit(r, false, "  ", "", "");
      break;
    }
    case TableStyle::kPlain: {
      emit(table.headers, true, "  ", "", "");
      for (auto& r : rows) emit(r, false, "  ", "", "");
      break;
    }
  }
  std::string s = out.str();
  if (style == TableStyle::kSimple || style == TableStyle::kPlain) {
    // tabulate strips trailing spaces of formats without a right border.
    std::string stripped;
    size_t start = 0;
    while (start < s.size()) {
      size_t end = s.find('\n', start);
      if (end == std::string::npos) end = s.size();
      std::string line = s.substr(start, end - start);
      line.erase(line.find_last_not_of(' ') + 1);
      stripped += line + "\n";
      start = end + 1;
    }
    s = stripped;
  }
  if (!s.empty() && s.back() == '\n') s.pop_back();
  return s;
}

std::string RenderCsv(const Table& table) {
  std::ostringstream out;
  auto field = [&](const std::string& raw) {
    // Control characters escaped (a newline stays, quoted); a text cell that a
    // spreadsheet would run as a formula gets a leading apostrophe.
    std::string s = TerminalSafe(raw);
    if (!s.empty() && (s[0] == '=' || s[0] == '+' || s[0] == '-' || s[0] == '@') && !IsNumber(s))
      s = "'" + s;
    if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
    std::string q = "\"";
    for (char ch : s) {
      if (ch == '"') q += '"';
      q += ch;
    }
    return q + "\"";
  };
  auto line = [&](const std::vector<std::string>& cells) {
    for (size_t i = 0; i < cells.size(); ++i) out << (i ? "," : "") << field(cells[i]);
    out << "\n";
  };
  line(table.headers);
  for (auto& r : table.rows) line(r);
  return out.str();
}

}  // namespace qsweep
