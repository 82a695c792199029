#include "common/table.h"

#include <gtest/gtest.h>

#include "common/sha256.h"

namespace qsweep {
namespace {

// The expected text is MASE's recorded histogram (MASE.md section 5.5).
TEST(TableTest, OrgtblMatchesMaseHistogramLayout) {
  Table t;
  t.headers = {"Original type", "OP", "Total", "Changed", "Unchanged"};
  t.rows = {{"BatchNorm1d", "batch_norm1d", "1", "0", "1"},
            {"Linear", "linear", "1", "1", "0"},
            {"ReLU", "relu", "2", "0", "2"},
            {"output", "output", "1", "0", "1"},
            {"x", "placeholder", "1", "0", "1"}};
  const char* expected =
      "| Original type   | OP           |   Total |   Changed |   Unchanged |\n"
      "|-----------------+--------------+---------+-----------+-------------|\n"
      "| BatchNorm1d     | batch_norm1d |       1 |         0 |           1 |\n"
      "| Linear          | linear       |       1 |         1 |           0 |\n"
      "| ReLU            | relu         |       2 |         0 |           2 |\n"
      "| output          | output       |       1 |         0 |           1 |\n"
      "| x               | placeholder  |       1 |         0 |           1 |";
  EXPECT_EQ(RenderTable(t, TableStyle::kOrgtbl), expected);
}

TEST(TableTest, GridHandlesMultilineCells) {
  Table t;
  t.headers = {"a", "b"};
  t.rows = {{"x", "line1\nline2"}};
  const char* expected =
      "+-----+-------+\n"
      "| a   | b     |\n"
      "+=====+=======+\n"
      "| x   | line1 |\n"
      "|     | line2 |\n"
      "+-----+-------+";
  EXPECT_EQ(RenderTable(t, TableStyle::kGrid), expected);
}

TEST(TableTest, DecimalAlignment) {
  Table t;
  t.headers = {"v"};
  t.rows = {{"1.5"}, {"10.25"}};
  EXPECT_EQ(RenderTable(t, TableStyle::kSimple), "    v\n-----\n 1.5\n10.25");
}

TEST(TableTest, CsvQuotesSpecialCharacters) {
  Table t;
  t.headers = {"name", "value"};
  t.rows = {{"a,b", "say \"hi\""}};
  EXPECT_EQ(RenderCsv(t), "name,value\n\"a,b\",\"say \"\"hi\"\"\"\n");
}

TEST(Sha256Test, KnownDigests) {
  // FIPS 180-2 test vectors.
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  Sha256 h;
  h.Update("a");
  h.Update("bc");
  EXPECT_EQ(h.HexDigest(), Sha256Hex("abc"));
}

TEST(Sha256Test, MissingFileIsNotFound) {
  auto r = Sha256File("/nonexistent/file");
  EXPECT_TRUE(absl::IsNotFound(r.status()));
}

}  // namespace
}  // namespace qsweep
