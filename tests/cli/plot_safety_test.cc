// `qsweep plot`: labels, titles and metric names are data for gnuplot, never
// commands (security issue, section 3). A sweep's text with a newline and a
// gnuplot '!' shell command, backtick command substitution, system(), quotes,
// backslashes, @macros, $ and ESC sequences is plotted; nothing runs, and the
// plot is still written.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "client/plot.h"

namespace qsweep {
namespace {

namespace fs = std::filesystem;

class PlotSafetyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("qsweep_plot_safety_" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    old_cwd_ = fs::current_path();
    fs::current_path(dir_);  // relative markers land here
  }
  void TearDown() override {
    fs::current_path(old_cwd_);
    fs::remove_all(dir_);
  }
  // Strings that would run `touch <marker>` if gnuplot read them as code.
  std::vector<std::string> Hostile() {
    const std::string m = (dir_ / "marker").string();
    return {"x\n!touch " + m + "1\n",
            "x\r\n!touch " + m + "2\r\n",
            "`touch " + m + "3`",
            "\" . system(\"touch " + m + "4\") . \"",
            "' . system('touch " + m + "5') . '",
            "\\\n!touch " + m + "6",
            "'\n!touch " + m + "7\n'",
            "@GPVAL_PWD $HOME \\\\ \\\" ' \x1b[31mred\x1b]0;title\x07 \xc2\x9b",
            "eval(\"!touch " + m + "8\")",
            "'', system(\"touch " + m + "9\"), ''",
            "''' . system('touch " + m + "10') . '''"};
  }
  void ExpectNoMarkers() {
    for (const auto& e : fs::directory_iterator(dir_))
      EXPECT_EQ(e.path().filename().string().rfind("marker", 0), std::string::npos)
          << "gnuplot ran a command from the data: " << e.path();
  }
  fs::path dir_, old_cwd_;
};

TEST_F(PlotSafetyTest, HostileLabelsTitlesAndMetricsAreData) {
  std::vector<PlotSeries> series;
  for (const auto& h : Hostile()) series.push_back({h, {{1, 0.5}, {2, 0.6}}});
  for (const auto& h : Hostile()) {
    PlotOptions o;
    o.output = (dir_ / "curves.svg").string();
    o.metric = h;
    o.title = h;
    o.xlabel = h;
    fs::remove(o.output);
    absl::Status s = DrawPlot(series, o);
    EXPECT_TRUE(s.ok()) << s << h;
    EXPECT_TRUE(fs::exists(o.output));
  }
  ExpectNoMarkers();
}

TEST_F(PlotSafetyTest, LocalRunsWithHostileFolderNames) {
  std::vector<std::string> args;
  for (const std::string& name :
       {std::string("run\n!touch marker_l1\n"), std::string("`touch marker_l2`"),
        std::string("a'b\"c\\d @x $y \x1b[2J")}) {
    fs::create_directories(dir_ / name / "software");
    std::ofstream(dir_ / name / "software" / "metrics.csv")
        << "name,step,epoch,value\nval_acc_epoch,1,0,0.5\nval_acc_epoch,2,1,0.7\n";
    args.push_back((dir_ / name).string());
  }
  args.insert(args.end(),
              {"--metric", "val_acc_epoch", "-o", "local.png", "--title", "t\n!touch marker_l3\n"});
  EXPECT_EQ(RunLocalPlotCommand(args), 0);
  EXPECT_TRUE(fs::exists(dir_ / "local.png"));
  ExpectNoMarkers();
}

// An output name gnuplot would read as a pipe: written as a file.
TEST_F(PlotSafetyTest, OutputNameIsAFile) {
  PlotOptions o;
  o.output = "|touch marker_pipe; cat >x.svg";
  std::vector<PlotSeries> series = {{"a", {{1, 1}, {2, 2}}}};
  absl::Status s = DrawPlot(series, o);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_TRUE(fs::exists(dir_ / o.output));
  ExpectNoMarkers();
}

}  // namespace
}  // namespace qsweep
