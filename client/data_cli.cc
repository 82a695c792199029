#include "client/data_cli.h"

#include <algorithm>
#include <filesystem>
#include <charconv>
#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "worker/core/data/dataset.h"
#include "worker/core/data/jsc_loader.h"

namespace qsweep {
namespace {

// Flags shared by the subcommands that load a dataset.
struct LoadFlags {
  std::string name;
  std::string data_dir;
  std::string source;
  std::optional<int64_t> synthetic_rows;
  uint64_t synthetic_seed = 0;

  void Register(CLI::App* cmd) {
    cmd->add_option("NAME", name, "dataset name (jsc, jsc-synthetic, or an imported name)")
        ->required();
    cmd->add_option("--data-dir", data_dir, "dataset directory (default: the cache dir)");
    cmd->add_option("--source", source, "for jsc: the raw HDF5 file or OpenML CSV");
    cmd->add_option("--synthetic-rows", synthetic_rows,
                    "rows generated for jsc-synthetic before the split (default 986880)");
    cmd->add_option("--synthetic-seed", synthetic_seed, "seed of jsc-synthetic (default 0)");
  }
  absl::StatusOr<Dataset> Load() const {
    if (name != "jsc-synthetic" && (synthetic_rows.has_value() || synthetic_seed != 0)) {
      return absl::InvalidArgumentError(
          "--synthetic-rows and --synthetic-seed apply only to jsc-synthetic");
    }
    if (synthetic_rows.has_value() && *synthetic_rows <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--synthetic-rows must be > 0, got ", *synthetic_rows));
    }
    DatasetRequest req;
    req.name = name;
    req.cache_dir = data_dir;
    req.source_path = source;
    req.synthetic_rows = synthetic_rows.value_or(0);
    req.synthetic_seed = synthetic_seed;
    return LoadDataset(req);
  }
};

void AppendNumber(std::string& buf, float v) {
  char tmp[32];
  auto [p, ec] = std::to_chars(tmp, tmp + sizeof tmp, v);
  buf.append(tmp, p);
}

// CSV: a header row of feature names then `label`; one row per sample.
absl::Status WriteCsv(const Dataset& d, const DataSplit& split, const std::string& path) {
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "wb"), &std::fclose);
  if (!f) return absl::PermissionDeniedError(absl::StrCat("cannot create ", path));
  std::string buf = absl::StrCat(absl::StrJoin(d.feature_names, ","), ",label\n");
  bool ok = true;
  for (int64_t r = 0; r < split.rows && ok; ++r) {
    for (int64_t j = 0; j < d.n_features; ++j) {
      AppendNumber(buf, split.x[r * d.n_features + j]);
      buf.push_back(',');
    }
    absl::StrAppend(&buf, split.y[r], "\n");
    if (buf.size() > (1 << 20)) {
      ok = std::fwrite(buf.data(), 1, buf.size(), f.get()) == buf.size();
      buf.clear();
    }
  }
  ok = ok && std::fwrite(buf.data(), 1, buf.size(), f.get()) == buf.size();
  if (!ok || std::fclose(f.release()) != 0) {
    return absl::InternalError(absl::StrCat("failed writing ", path, " (disk full?)"));
  }
  return absl::OkStatus();
}

void PrintInfo(const Dataset& d, const std::string& data_dir, std::ostream& out) {
  DatasetRequest req;
  req.name = d.name;
  req.cache_dir = data_dir;
  req.synthetic_rows = d.synthetic_rows;
  req.synthetic_seed = d.synthetic_seed;
  out << "name:        " << d.DisplayName() << "\n"
      << "synthetic:   " << (d.synthetic ? "yes (SYNTHETIC data, not JSC)" : "no") << "\n"
      << "rows:        " << d.train_val.rows << " train+val (validation = train+val, as in MASE), "
      << d.test.rows << " test\n"
      << "features:    " << d.n_features << " (" << absl::StrJoin(d.feature_names, ", ") << ")\n"
      << "classes:     " << d.n_classes << " (" << absl::StrJoin(d.class_names, ", ") << ")\n"
      << "sha256:      " << d.sha256 << "\n"
      << "file:        " << PreparedPath(req) << "\n"
      << "description: " << d.description << "\n";
}

std::string Describe(const std::string& name) {
  if (name == "jsc") return "real JSC data (needs `qsweep data fetch jsc` once)";
  if (name == "jsc-synthetic") return "SYNTHETIC JSC-shaped data, generated offline";
  return "imported";
}

int Fail(std::ostream& err, const std::string& cmd, const absl::Status& s) {
  err << "qsweep data " << cmd << ": " << s.message() << "\n";
  return 1;
}

// The parsed command line of every subcommand.
struct Commands {
  CLI::App* fetch;
  std::string what, fetch_dir, url;
  CLI::App* exp;
  LoadFlags exp_flags;
  std::string split, format = "csv", output;
  CLI::App* imp;
  CsvImportOptions import;
  bool replace = false;
  CLI::App* list;
  std::string list_dir;
  LoadFlags info_flags;

  void Register(CLI::App& app) {
    fetch = app.add_subcommand("fetch", "download the real JSC file (HDF5, MASE.md 1.1)");
    fetch->add_option("WHAT", what, "what to fetch: jsc")
        ->required()
        ->check(CLI::IsMember({"jsc"}));
    fetch->add_option("--data-dir", fetch_dir, "target directory (default: the cache dir)");
    fetch->add_option("--url", url, "download URL (default: $QSWEEP_JSC_URL or CERNBox)");

    exp = app.add_subcommand("export", "write a split as CSV (features..., label)");
    exp_flags.Register(exp);
    exp->add_option("--split", split, "train (= train+val) or test")
        ->required()
        ->check(CLI::IsMember({"train", "test"}));
    exp->add_option("--format", format, "output format: csv")->check(CLI::IsMember({"csv"}));
    exp->add_option("-o,--output", output, "output file")->required();

    imp = app.add_subcommand("import", "import a CSV (header row, features + label)");
    imp->add_option("FILE", import.path, "CSV file")->required();
    imp->add_option("--name", import.name, "dataset name")->required();
    imp->add_option("--label-column", import.label_column, "label column (default: last)");
    imp->add_option("--data-dir", import.cache_dir, "dataset directory (default: cache dir)");
    imp->add_flag("--replace", replace,
                  "replace an existing dataset of the same name (its old file is removed)");

    list = app.add_subcommand("list", "list known datasets");
    list->add_option("--data-dir", list_dir, "dataset directory (default: the cache dir)");

    info_flags.Register(app.add_subcommand("info", "rows, shapes, sha256 and provenance"));
  }
};

int RunFetch(const Commands& c, std::ostream& out, std::ostream& err) {
  FetchJscOptions opt;
  opt.data_dir = c.fetch_dir;
  opt.url = c.url;
  auto path = FetchJsc(opt);
  if (!path.ok()) return Fail(err, "fetch", path.status());
  out << "fetched JSC data to " << *path << "\n";
  return 0;
}

int RunExport(const Commands& c, std::ostream& out, std::ostream& err) {
  auto d = c.exp_flags.Load();
  if (!d.ok()) return Fail(err, "export", d.status());
  const bool train = c.split == "train";
  const DataSplit& s = train ? d->train_val : d->test;
  if (auto st = WriteCsv(*d, s, c.output); !st.ok()) return Fail(err, "export", st);
  out << "wrote " << s.rows << (train ? " train+val" : " test") << " rows of " << d->DisplayName()
      << " to " << c.output << "\n";
  return 0;
}

}  // namespace

int RunDataCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  CLI::App app("Fetch, export, import, list and inspect datasets", "qsweep data");
  app.require_subcommand(1);
  Commands c;
  c.Register(app);
  try {
    std::vector<std::string> reversed(args.rbegin(), args.rend());  // CLI11 wants reverse order
    app.parse(reversed);
  } catch (const CLI::CallForHelp&) {
    out << app.help();
    return 0;
  } catch (const CLI::CallForAllHelp&) {
    out << app.help("", CLI::AppFormatMode::All);
    return 0;
  } catch (const CLI::ParseError& e) {
    err << "qsweep data: " << e.what() << " (see `qsweep data --help`)\n";
    return 2;
  }
  if (c.fetch->parsed()) return RunFetch(c, out, err);
  if (c.exp->parsed()) return RunExport(c, out, err);
  if (c.imp->parsed()) {
    // A prepared dataset is immutable: checkpoints record its hash.
    DatasetRequest existing;
    existing.name = c.import.name;
    existing.cache_dir = c.import.cache_dir;
    std::error_code ec;
    if (!c.replace && !c.import.name.empty() &&
        std::filesystem::exists(PreparedPath(existing), ec)) {
      err << "qsweep data import: dataset '" << c.import.name << "' already exists ("
          << PreparedPath(existing) << "); choose another --name, or pass --replace\n";
      return 2;
    }
    auto d = ImportCsvDataset(c.import);
    if (!d.ok()) return Fail(err, "import", d.status());
    PrintInfo(*d, c.import.cache_dir, out);
    return 0;
  }
  if (c.list->parsed()) {
    for (const std::string& n : ListDatasets(c.list_dir)) out << n << "\t" << Describe(n) << "\n";
    return 0;
  }
  auto d = c.info_flags.Load();
  if (!d.ok()) return Fail(err, "info", d.status());
  PrintInfo(*d, c.info_flags.data_dir, out);
  return 0;
}

int RunDataCommand(const std::vector<std::string>& args) {
  return RunDataCommand(args, std::cout, std::cerr);
}

}  // namespace qsweep
