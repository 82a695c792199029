// The real JSC data: MASE's HDF5 file (dataset `t_allpar_new`, a compound
// array with named fields) and the OpenML CSV packaging
// (`hls4ml_lhc_jets_hlf`, string classes g,q,t,w,z). Both produce the 16
// features of MASE.md §1.2 and class indices in MASE's order
// 0=j_g, 1=j_q, 2=j_w, 3=j_z, 4=j_t. No preprocessing happens here.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/core/data/preprocess.h"

namespace qsweep {

inline constexpr char kJscTable[] = "t_allpar_new";
inline constexpr char kJscFileName[] =
    "processed-pythia82-lhc13-all-pt1-50k-r1_h022_e0175_t220_nonu_truth.z";
inline constexpr char kJscOpenmlFileName[] = "hls4ml_lhc_jets_hlf.csv";
inline constexpr char kJscUrl[] = "https://cernbox.cern.ch/index.php/s/jvFd5MoWhGs1l5v/download";

// The 16 feature fields and 5 one-hot label fields, in MASE's order.
const std::vector<std::string>& JscFeatureNames();
const std::vector<std::string>& JscLabelNames();

// Reads MASE's HDF5 file. NOT_FOUND for a missing file; INVALID_ARGUMENT
// naming the file for a non-HDF5 file, a missing `t_allpar_new`, a dataset
// that is not a compound array, or a missing/non-numeric field (the message
// lists the fields present); DATA_LOSS when reading the rows fails.
// Labels are argmax of the one-hot fields (first maximum wins).
absl::StatusOr<RawTable> ReadJscHdf5(const std::string& path);

// Checks the layout of an HDF5 file without reading its rows; returns the
// row count. Same errors as ReadJscHdf5.
absl::StatusOr<int64_t> VerifyJscHdf5(const std::string& path);

// Reads the OpenML CSV: feature columns named as in MASE (with or without
// the `j_` prefix), and a `class` column with g, q, t, w, z.
absl::StatusOr<RawTable> ReadJscOpenmlCsv(const std::string& path);

// Either of the above: a path ending in ".csv" is the OpenML CSV, anything
// else the HDF5 file.
absl::StatusOr<RawTable> ReadJscSource(const std::string& path);

struct FetchJscOptions {
  // Directory that receives the file (created if needed).
  // Default: "" = DefaultDataDir().
  std::string data_dir;
  // Download URL. Default: "" = $QSWEEP_JSC_URL if set, else kJscUrl.
  std::string url;
  // Give up connecting after this many seconds. Default: 30.
  int connect_timeout_s = 30;
};

// Downloads the official JSC HDF5 file with `curl` to
// <data_dir>/<kJscFileName> (via a temporary file, renamed only after the
// download verified as HDF5 with `t_allpar_new` and every field). Returns
// the final path. UNAVAILABLE with a clear message when the download fails
// (offline, DNS, HTTP error); INVALID_ARGUMENT when the downloaded file is
// not the expected HDF5 layout.
absl::StatusOr<std::string> FetchJsc(const FetchJscOptions& options);

}  // namespace qsweep
