// Tables and CSV from sweep text (security issue, section 3): control
// characters are shown escaped, never reach a terminal raw; CSV quoting holds
// and a text cell that a spreadsheet would run as a formula is defused.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "common/table.h"

namespace qsweep {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// True if `s` holds a byte a terminal acts on: C0 other than '\n', DEL, or
// the UTF-8 form of a C1 control.
bool HasRawControl(const std::string& s) {
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if ((c < 0x20 && c != '\n') || c == 0x7f) return true;
    if (c == 0xc2 && i + 1 < s.size()) {
      const unsigned char d = static_cast<unsigned char>(s[i + 1]);
      if (d >= 0x80 && d <= 0x9f) return true;
    }
  }
  return false;
}

const char* const kHostile[] = {
    "\x1b[2J\x1b[H",     // clear the screen
    "\x1b]0;owned\x07",  // retitle the window
    "a\rb",              // overwrite the line
    "bell\x07\x08\x7f",  // BEL, BS, DEL
    "c1\xc2\x9b"
    "31m",  // CSI as a C1 control
    "tab\there",
    "nul\x01\x02",
};

TEST(TableSafetyTest, CellsAndHeadersShowControlsEscaped) {
  for (TableStyle style : {TableStyle::kOrgtbl, TableStyle::kGrid, TableStyle::kSimple,
                           TableStyle::kPretty, TableStyle::kPlain}) {
    for (const char* h : kHostile) {
      Table t{{"key", h}, {{h, "1"}, {"x", h}}};
      const std::string out = RenderTable(t, style);
      EXPECT_FALSE(HasRawControl(out)) << static_cast<int>(style) << ": " << out;
    }
  }
  Table t{{"name"}, {{"\x1b[31mred"}}};
  EXPECT_THAT(RenderTable(t, TableStyle::kSimple), HasSubstr("\\x1b[31mred"));
}

TEST(TableSafetyTest, CsvIsQuotedAndHasNoRawControls) {
  for (const char* h : kHostile) {
    Table t{{"a", "b"}, {{h, "x,y"}}};
    EXPECT_FALSE(HasRawControl(RenderCsv(t))) << RenderCsv(t);
  }
  Table t{{"a", "b"}, {{"say \"hi\"", "line1\nline2"}, {"x,y", "plain"}}};
  EXPECT_EQ(RenderCsv(t), "a,b\n\"say \"\"hi\"\"\",\"line1\nline2\"\n\"x,y\",plain\n");
}

TEST(TableSafetyTest, CsvDefusesFormulas) {
  Table t{{"label", "value"},
          {{"=HYPERLINK(\"http://x\",\"y\")", "-0.5"},
           {"+cmd", "1e-3"},
           {"-2+3", "-7"},
           {"@SUM(A1)", "+1"},
           {"a=b", "x"}}};
  EXPECT_EQ(RenderCsv(t),
            "label,value\n"
            "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\",-0.5\n"
            "'+cmd,1e-3\n"
            "'-2+3,-7\n"
            "'@SUM(A1),+1\n"
            "a=b,x\n");
}

}  // namespace
}  // namespace qsweep
