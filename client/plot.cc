#include "client/plot.h"

#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "common/terminal_text.h"

namespace qsweep {
namespace fs = std::filesystem;
namespace {

// A gnuplot string literal holding `s` as plain text. Single-quoted: gnuplot
// expands neither backslash escapes, nor `command` substitution, nor @macros
// inside single quotes, so the only way out is the quote itself. gnuplot's
// scanner reads a doubled quote right after the opening one as an empty
// string, so a quote is not escaped but shown as U+2019 (’). Control
// characters (a newline would end the command and start a new one, e.g.
// "!rm ...") are shown escaped. No byte of a label can leave the string.
std::string Quote(const std::string& s) {
  std::string out = "'";
  for (char c : TerminalSafe(s, /*keep_newlines=*/false)) {
    if (c == '\'')
      out += "\u2019";
    else
      out += c;
  }
  return out + "'";
}

}  // namespace

absl::Status DrawPlot(const std::vector<PlotSeries>& series, const PlotOptions& o) {
  std::string ext = fs::path(o.output).extension().string();
  // Many curves (a sweep) get their legend below the plot on a taller canvas.
  size_t curves = 0;
  for (const auto& s : series) curves += s.points.empty() ? 0 : 1;
  const bool key_below = curves > 8;
  const int height = key_below ? 600 + 14 * static_cast<int>((curves + 2) / 3) : 600;
  std::string size = absl::StrCat("size 1100,", height);
  std::string terminal;
  if (ext == ".png")
    terminal = "pngcairo " + size;
  else if (ext == ".svg")
    terminal = "svg " + size + " dynamic";
  else
    return absl::InvalidArgumentError(
        absl::StrCat("plot output '", o.output, "' must end in .png or .svg"));
  size_t total = 0;
  for (const auto& s : series) total += s.points.size();
  if (total == 0)
    return absl::InvalidArgumentError(absl::StrCat("no values of metric '", o.metric, "' to plot"));

  std::ostringstream script;
  script << "set terminal " << terminal
         << "\n"
         // "./" keeps a relative name from reading as gnuplot's '|command' output.
         << "set output " << Quote(fs::path(o.output).is_absolute() ? o.output : "./" + o.output)
         << "\n"
         << "set title " << Quote(o.title.empty() ? o.metric : o.title) << " noenhanced\n"
         << "set xlabel " << Quote(o.xlabel) << " noenhanced\nset ylabel " << Quote(o.metric)
         << " noenhanced\n"
         << (key_below ? "set key below maxrows " + std::to_string((curves + 2) / 3) +
                             " noenhanced font \",9\"\n"
                       : std::string("set key outside right noenhanced\n"))
         << "set format x \"%.0s%c\"\nset grid\n";
  script << "plot ";
  // gnuplot cycles through 8 colours; every further 8 curves get another dash pattern.
  size_t drawn = 0;
  for (size_t i = 0; i < series.size(); ++i) {
    if (series[i].points.empty()) continue;
    script << (drawn ? ", " : "") << "'-' using 1:2 with linespoints pt 7 ps 0.5 dt "
           << (drawn / 8 + 1) << " title " << Quote(series[i].label);
    ++drawn;
  }
  script << "\n";
  for (const auto& s : series) {
    if (s.points.empty()) continue;
    auto pts = s.points;
    std::sort(pts.begin(), pts.end());
    for (const auto& [x, y] : pts) script << x << " " << y << "\n";
    script << "e\n";
  }
  std::string cmd = o.gnuplot + " 2>&1";
  FILE* p = popen(cmd.c_str(), "w");
  if (!p) return absl::FailedPreconditionError("cannot start gnuplot");
  std::string text = script.str();
  std::fwrite(text.data(), 1, text.size(), p);
  int status = pclose(p);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return absl::FailedPreconditionError(
        absl::StrCat("gnuplot failed (exit ", WIFEXITED(status) ? WEXITSTATUS(status) : -1,
                     "); is it installed? (Debian package gnuplot-nox)"));
  if (!fs::exists(o.output))
    return absl::FailedPreconditionError(absl::StrCat("gnuplot wrote no file at ", o.output));
  return absl::OkStatus();
}

absl::StatusOr<PlotSeries> ReadMetricsCsv(const std::string& path, const std::string& metric) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("metrics file '", path, "' cannot be opened"));
  PlotSeries s;
  std::string line;
  int64_t n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (n == 1) {
      if (line != "name,step,epoch,value")
        return absl::InvalidArgumentError(absl::StrCat(
            path, ":1: expected the header 'name,step,epoch,value' of a qsweep metrics.csv"));
      continue;
    }
    if (line.empty()) continue;
    std::vector<std::string> f = absl::StrSplit(line, ',');
    if (f.size() != 4)
      return absl::InvalidArgumentError(
          absl::StrCat(path, ":", n, ": expected 4 columns, found ", f.size()));
    if (f[0] != metric) continue;
    char* e1 = nullptr;
    char* e2 = nullptr;
    double step = std::strtod(f[1].c_str(), &e1);
    double value = std::strtod(f[3].c_str(), &e2);
    if (*e1 != '\0' || *e2 != '\0' || f[1].empty() || f[3].empty())
      return absl::InvalidArgumentError(
          absl::StrCat(path, ":", n, ": step and value must be numbers"));
    s.points.emplace_back(step, value);
  }
  return s;
}

int RunLocalPlotCommand(const std::vector<std::string>& args) {
  PlotOptions o;
  o.metric = "val_acc_epoch";
  std::vector<std::string> runs;
  constexpr const char* kUsage =
      "usage: qsweep plot RUN... --metric val_acc_epoch -o curves.png|svg [--title T]\n"
      "  RUN: a project folder of qsweep train, or its software/metrics.csv\n"
      "usage: qsweep plot SWEEP --metric val_acc_epoch -o curves.png|svg   (a sweep on the "
      "server)\n";
  for (const auto& a : args)
    if (a == "-h" || a == "--help") {
      std::printf("%s", kUsage);
      return 0;
    }
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if ((a == "--metric" || a == "-o" || a == "--output" || a == "--title") &&
        i + 1 < args.size()) {
      (a == "--metric" ? o.metric : a == "--title" ? o.title : o.output) = args[++i];
    } else if (a.rfind("-", 0) == 0) {
      std::fprintf(
          stderr,
          "error: qsweep plot: unknown flag '%s'; allowed: --metric M, -o FILE, --title T\n",
          a.c_str());
      return 2;
    } else {
      runs.push_back(a);
    }
  }
  if (runs.empty() || o.output.empty()) {
    std::fprintf(stderr, "%s", kUsage);
    return 2;
  }
  std::vector<PlotSeries> series;
  for (const auto& run : runs) {
    fs::path csv = run;
    if (fs::is_directory(csv)) csv = csv / "software" / "metrics.csv";
    auto s = ReadMetricsCsv(csv.string(), o.metric);
    if (!s.ok()) {
      std::fprintf(stderr, "error: %s\n", TerminalSafe(std::string(s.status().message())).c_str());
      return 2;
    }
    s->label = fs::is_directory(run) ? fs::path(run).lexically_normal().filename().string() : run;
    if (s->label.empty()) s->label = run;
    series.push_back(std::move(*s));
  }
  absl::Status st = DrawPlot(series, o);
  if (!st.ok()) {
    std::fprintf(stderr, "error: %s\n", TerminalSafe(std::string(st.message())).c_str());
    return absl::IsInvalidArgument(st) ? 2 : 1;
  }
  std::printf("wrote %s (%zu runs, metric %s)\n", o.output.c_str(), series.size(),
              o.metric.c_str());
  return 0;
}

}  // namespace qsweep
