#include "common/terminal_text.h"

#include <gtest/gtest.h>

#include <sstream>
#include <string>

namespace qsweep {
namespace {

TEST(TerminalTextTest, EscapesWhatATerminalActsOn) {
  EXPECT_EQ(TerminalSafe("plain text, ünïcödé ✓"), "plain text, ünïcödé ✓");
  EXPECT_EQ(TerminalSafe("a\x1b[2Jb"), "a\\x1b[2Jb");
  EXPECT_EQ(TerminalSafe("a\nb"), "a\nb");
  EXPECT_EQ(TerminalSafe("a\nb", /*keep_newlines=*/false), "a\\nb");
  EXPECT_EQ(TerminalSafe("t\tr\r"), "t\\tr\\r");
  EXPECT_EQ(TerminalSafe(std::string("n\0l", 3)), "n\\x00l");
  EXPECT_EQ(TerminalSafe("d\x7f"), "d\\x7f");
  EXPECT_EQ(TerminalSafe("c\xc2\x9b"
                         "1m"),
            "c\\u009b1m");  // C1 CSI
  EXPECT_EQ(TerminalSafe("r\xe2\x80\xae"
                         "txt"),
            "r\\u202etxt");                                 // right-to-left override
  EXPECT_EQ(TerminalSafe("bad\xff\xc0"), "bad\\xff\\xc0");  // not UTF-8
  EXPECT_EQ(TerminalSafe("cut\xe2\x80"), "cut\\xe2\\x80");  // cut-off sequence
  EXPECT_TRUE(IsTerminalSafe("ok ✓\n"));
  EXPECT_FALSE(IsTerminalSafe("\x1b"));
}

TEST(TerminalTextTest, StreamBufferHandlesSplitSequencesAndJson) {
  std::ostringstream target;
  {
    TerminalSafeBuf buf(target.rdbuf(), TerminalSafeBuf::Mode::kText);
    std::ostream out(&buf);
    out << "a\xe2";  // a check mark split across writes
    out << "\x9c\x93"
        << "\x1b[K" << '\n';
    out.flush();
  }
  EXPECT_EQ(target.str(), "a✓\\x1b[K\n");
  std::ostringstream json;
  {
    TerminalSafeBuf buf(json.rdbuf(), TerminalSafeBuf::Mode::kJson);
    std::ostream out(&buf);
    out << "{\"k\": \"d\x7f c\xc2\x9b\"}\n";
  }
  EXPECT_EQ(json.str(), "{\"k\": \"d\\u007f c\\u009b\"}\n");
}

}  // namespace
}  // namespace qsweep
