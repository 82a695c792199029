// ModelSpec <-> JSON (declared in checkpoint.h). Torch-free TU.
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/core/torch/checkpoint.h"

namespace qsweep {

nlohmann::json ModelSpecToJson(const ModelSpec& spec) {
  nlohmann::json layers = nlohmann::json::array();
  for (const auto& l : spec.layers) {
    nlohmann::json j = {{"type", l.MaseOp()}};
    if (l.kind == LayerKind::kLinear) {
      j["in"] = l.in;
      j["out"] = l.out;
    } else if (l.kind == LayerKind::kBatchNorm1d) {
      j["num_features"] = l.out;
    } else if (l.kind == LayerKind::kDropout) {
      j["p"] = l.p;
    }
    layers.push_back(std::move(j));
  }
  return {{"name", spec.name},
          {"container", spec.container},
          {"in_features", spec.in_features},
          {"num_classes", spec.num_classes},
          {"layers", std::move(layers)}};
}

namespace {

absl::StatusOr<int64_t> PositiveInt(const nlohmann::json& j, const std::string& key,
                                    const std::string& where) {
  if (!j.contains(key) || !j[key].is_number_integer() || j[key].get<int64_t>() <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("model spec: ", where, " needs a positive integer '", key, "'"));
  }
  return j[key].get<int64_t>();
}

absl::StatusOr<LayerSpec> LayerFromJson(const nlohmann::json& j, size_t i) {
  const std::string where = absl::StrCat("layers[", i, "]");
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string()) {
    return absl::InvalidArgumentError(
        absl::StrCat("model spec: ", where, " needs a string 'type'"));
  }
  const std::string type = j["type"].get<std::string>();
  LayerSpec l;
  if (type == "linear") {
    l.kind = LayerKind::kLinear;
    QSWEEP_ASSIGN_OR_RETURN(l.in, PositiveInt(j, "in", where));
    QSWEEP_ASSIGN_OR_RETURN(l.out, PositiveInt(j, "out", where));
  } else if (type == "batch_norm1d") {
    l.kind = LayerKind::kBatchNorm1d;
    QSWEEP_ASSIGN_OR_RETURN(l.out, PositiveInt(j, "num_features", where));
    l.in = l.out;
  } else if (type == "relu") {
    l.kind = LayerKind::kReLU;
  } else if (type == "dropout") {
    l.kind = LayerKind::kDropout;
    if (!j.contains("p") || !j["p"].is_number() || j["p"].get<double>() < 0 ||
        j["p"].get<double>() >= 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("model spec: ", where, " needs a number 'p' in [0, 1)"));
    }
    l.p = j["p"].get<double>();
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("model spec: ", where, " has unknown type '", type,
                     "' (allowed: linear, batch_norm1d, relu, dropout)"));
  }
  return l;
}

}  // namespace

absl::StatusOr<ModelSpec> ModelSpecFromJson(const nlohmann::json& j) {
  if (!j.is_object()) return absl::InvalidArgumentError("model spec: expected a JSON object");
  ModelSpec spec;
  if (!j.contains("name") || !j["name"].is_string()) {
    return absl::InvalidArgumentError("model spec: needs a string 'name'");
  }
  spec.name = j["name"].get<std::string>();
  if (j.contains("container")) {
    if (!j["container"].is_string()) {
      return absl::InvalidArgumentError("model spec: 'container' must be a string");
    }
    spec.container = j["container"].get<std::string>();
  }
  if (spec.container != "seq_blocks" && spec.container != "module_list") {
    return absl::InvalidArgumentError(absl::StrCat("model spec: container '", spec.container,
                                                   "' (allowed: seq_blocks, module_list)"));
  }
  QSWEEP_ASSIGN_OR_RETURN(spec.in_features, PositiveInt(j, "in_features", "the model"));
  QSWEEP_ASSIGN_OR_RETURN(spec.num_classes, PositiveInt(j, "num_classes", "the model"));
  if (!j.contains("layers") || !j["layers"].is_array() || j["layers"].empty()) {
    return absl::InvalidArgumentError("model spec: needs a non-empty array 'layers'");
  }
  for (size_t i = 0; i < j["layers"].size(); ++i) {
    QSWEEP_ASSIGN_OR_RETURN(LayerSpec l, LayerFromJson(j["layers"][i], i));
    spec.layers.push_back(l);
  }
  // BatchNorm/ReLU/Dropout widths follow the previous layer.
  int64_t width = spec.in_features;
  for (auto& l : spec.layers) {
    if (l.kind == LayerKind::kLinear) {
      width = l.out;
    } else if (l.kind != LayerKind::kBatchNorm1d) {
      l.in = l.out = width;
    }
  }
  QSWEEP_RETURN_IF_ERROR(ValidateModel(spec));
  return spec;
}

namespace {

constexpr char kRecordFormat[] = "qsweep-checkpoint";
constexpr int64_t kRecordFormatVersion = 1;

absl::Status NotACheckpoint(const std::string& path, const std::string& why) {
  return absl::DataLossError(
      absl::StrCat("checkpoint file '", path, "' is not a readable qsweep checkpoint: ", why));
}

}  // namespace

absl::StatusOr<CheckpointInfo> ParseCheckpointRecord(const std::string& path,
                                                     std::string_view record) {
  nlohmann::json j = nlohmann::json::parse(record, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return NotACheckpoint(path, "the qsweep_checkpoint record is not valid JSON");
  }
  const auto format = j.find("format");
  if (format == j.end() || !format->is_string() || *format != kRecordFormat) {
    return NotACheckpoint(path, "unknown format");
  }
  const auto version = j.find("format_version");
  if (version == j.end() || !version->is_number_integer() ||
      version->get<int64_t>() > kRecordFormatVersion || version->get<int64_t>() < 1) {
    return NotACheckpoint(path, absl::StrCat("unsupported format_version (this build reads ",
                                             kRecordFormatVersion, ")"));
  }
  CheckpointInfo info;
  const auto spec_json = j.find("spec");
  auto spec = ModelSpecFromJson(spec_json == j.end() ? nlohmann::json() : *spec_json);
  if (!spec.ok()) return NotACheckpoint(path, std::string(spec.status().message()));
  info.spec = *std::move(spec);
  const auto meta = j.find("meta");
  info.meta = meta == j.end() ? nlohmann::json::object() : *meta;
  return info;
}

}  // namespace qsweep
