// Checkpoint files: writing, reading, loading into a Network, exporting a
// PyTorch state dict. Format described in checkpoint_io.h.
#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/serialization/export.h>
#include <torch/csrc/jit/serialization/pickler.h>
#include <torch/version.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <system_error>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/core/torch/checkpoint_io.h"

#ifndef QSWEEP_VERSION_STRING
#define QSWEEP_VERSION_STRING "unknown"
#endif

namespace qsweep {
namespace {

namespace fs = std::filesystem;

constexpr char kMetaKey[] = "qsweep_checkpoint";
constexpr char kStateKey[] = "state_dict";
constexpr char kOptimizerKey[] = "optimizer";
constexpr char kFormat[] = "qsweep-checkpoint";
constexpr int kFormatVersion = 1;

// The message of a torch exception without its C++ backtrace.
std::string TorchMessage(const std::exception& e) {
  if (const auto* c10e = dynamic_cast<const c10::Error*>(&e)) {
    return c10e->what_without_backtrace();
  }
  return e.what();
}

absl::Status NotACheckpoint(const std::string& path, const std::string& why) {
  return absl::DataLossError(
      absl::StrCat("checkpoint file '", path, "' is not a readable qsweep checkpoint: ", why));
}

absl::Status CheckExists(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    return absl::NotFoundError(absl::StrCat("checkpoint file '", path, "' does not exist"));
  }
  if (!fs::is_regular_file(path, ec)) {
    return absl::InvalidArgumentError(
        absl::StrCat("checkpoint path '", path, "' is not a regular file"));
  }
  return absl::OkStatus();
}

absl::StatusOr<CheckpointInfo> ParseMeta(const std::string& path, const c10::IValue& iv) {
  if (!iv.isString()) return NotACheckpoint(path, "the qsweep_checkpoint record is not text");
  return ParseCheckpointRecord(path, iv.toStringRef());
}

}  // namespace

void WriteStateDict(torch::serialize::OutputArchive& archive, const char* key, const Network& net) {
  c10::Dict<std::string, torch::Tensor> state;
  for (const auto& [name, t] : net.StateDict()) state.insert(name, t.detach().cpu());
  archive.write(key, c10::IValue(state));
}

absl::Status WriteArchiveAtomically(
    const std::string& path, const std::string& what,
    const std::function<absl::Status(torch::serialize::OutputArchive&)>& fill) {
  const std::string tmp = path + ".tmp";
  try {
    std::error_code ec;
    const fs::path parent = fs::path(path).parent_path();
    if (!parent.empty()) fs::create_directories(parent, ec);
    torch::serialize::OutputArchive archive;
    QSWEEP_RETURN_IF_ERROR(fill(archive));
    archive.save_to(tmp);
    fs::rename(tmp, path, ec);
    if (ec) {
      return absl::InternalError(
          absl::StrCat("writing ", what, " '", path, "' failed: ", ec.message()));
    }
  } catch (const std::exception& e) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    return absl::InternalError(
        absl::StrCat("writing ", what, " '", path, "' failed: ", TorchMessage(e)));
  }
  return absl::OkStatus();
}

absl::Status WriteCheckpoint(const std::string& path, const Network& net,
                             const FlatOptimizer* optimizer, nlohmann::json meta) {
  if (!meta.is_object()) meta = nlohmann::json::object();
  meta["libtorch_version"] = TORCH_VERSION;
  meta["qsweep_version"] = QSWEEP_VERSION_STRING;
  if (!meta.contains("quantization")) meta["quantization"] = nullptr;
  if (optimizer) meta["optimizer"] = optimizer->Describe();
  const nlohmann::json record = {{"format", kFormat},
                                 {"format_version", kFormatVersion},
                                 {"spec", ModelSpecToJson(net.spec())},
                                 {"meta", std::move(meta)}};
  return WriteArchiveAtomically(path, "checkpoint", [&](torch::serialize::OutputArchive& archive) {
    archive.write(kMetaKey, c10::IValue(record.dump()));
    WriteStateDict(archive, kStateKey, net);
    if (optimizer) {
      torch::serialize::OutputArchive opt;
      optimizer->Save(opt);
      archive.write(kOptimizerKey, opt);
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<CheckpointContents> ReadCheckpoint(const std::string& path) {
  QSWEEP_RETURN_IF_ERROR(CheckExists(path));
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(path, torch::Device(torch::kCPU));
    c10::IValue meta;
    if (!archive.try_read(kMetaKey, meta)) {
      return NotACheckpoint(path, "no qsweep_checkpoint record");
    }
    CheckpointContents out;
    QSWEEP_ASSIGN_OR_RETURN(out.info, ParseMeta(path, meta));
    c10::IValue state;
    if (!archive.try_read(kStateKey, state) || !state.isGenericDict()) {
      return NotACheckpoint(path, "no state_dict record");
    }
    for (const auto& entry : state.toGenericDict()) {
      if (!entry.key().isString() || !entry.value().isTensor()) {
        return NotACheckpoint(path, "state_dict holds a non-tensor entry");
      }
      out.state.emplace_back(entry.key().toStringRef(), entry.value().toTensor());
    }
    return out;
  } catch (const std::exception& e) {
    return NotACheckpoint(path, TorchMessage(e));
  }
}

namespace {

// The tensors of a pickled Dict[str, Tensor] file, or DATA_LOSS.
absl::StatusOr<std::vector<std::pair<std::string, torch::Tensor>>> ReadPickledStateDict(
    const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string what = absl::StrCat("weights file '", path,
                                        "' is neither a qsweep checkpoint nor a pickled "
                                        "state dict (torch.save(dict(model.state_dict())))");
  c10::IValue v;
  try {
    v = torch::pickle_load(bytes);
  } catch (const std::exception& e) {
    return absl::DataLossError(absl::StrCat(what, ": ", TorchMessage(e)));
  }
  if (!v.isGenericDict()) return absl::DataLossError(absl::StrCat(what, ": not a dict"));
  std::vector<std::pair<std::string, torch::Tensor>> state;
  for (const auto& entry : v.toGenericDict()) {
    if (!entry.key().isString() || !entry.value().isTensor()) {
      return absl::DataLossError(absl::StrCat(what, ": holds a non-tensor entry"));
    }
    state.emplace_back(entry.key().toStringRef(), entry.value().toTensor());
  }
  return state;
}

}  // namespace

absl::StatusOr<std::vector<std::pair<std::string, torch::Tensor>>> ReadWeights(
    const std::string& path) {
  QSWEEP_RETURN_IF_ERROR(CheckExists(path));
  std::vector<std::pair<std::string, torch::Tensor>> state;
  if (auto c = ReadCheckpoint(path); c.ok()) {
    state = std::move(c->state);
  } else {
    QSWEEP_ASSIGN_OR_RETURN(state, ReadPickledStateDict(path));
  }
  const std::string prefix = "model.";
  bool all_prefixed = !state.empty();
  for (const auto& kv : state) all_prefixed &= kv.first.rfind(prefix, 0) == 0;
  if (all_prefixed) {
    for (auto& kv : state) kv.first = kv.first.substr(prefix.size());
  }
  return state;
}

absl::StatusOr<CheckpointInfo> ReadCheckpointInfo(const std::string& path) {
  QSWEEP_ASSIGN_OR_RETURN(CheckpointContents c, ReadCheckpoint(path));
  return std::move(c.info);
}

absl::StatusOr<std::shared_ptr<Network>> LoadCheckpointNetwork(const std::string& path,
                                                               const torch::Device& device,
                                                               CheckpointInfo* info) {
  QSWEEP_ASSIGN_OR_RETURN(CheckpointContents c, ReadCheckpoint(path));
  try {
    QSWEEP_ASSIGN_OR_RETURN(std::shared_ptr<Network> net,
                            Network::Create(c.info.spec, std::nullopt));
    QSWEEP_RETURN_IF_ERROR(net->LoadStateDict(c.state, absl::StrCat("checkpoint '", path, "'")));
    net->ToDevice(device);
    net->eval();
    if (info) *info = std::move(c.info);
    return net;
  } catch (const std::exception& e) {
    return absl::InternalError(
        absl::StrCat("loading checkpoint '", path, "' failed: ", TorchMessage(e)));
  }
}

absl::Status LoadOptimizerState(const std::string& path, FlatOptimizer& optimizer) {
  QSWEEP_RETURN_IF_ERROR(CheckExists(path));
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(path, torch::Device(torch::kCPU));
    torch::serialize::InputArchive opt;
    if (!archive.try_read(kOptimizerKey, opt)) {
      return absl::NotFoundError(absl::StrCat("checkpoint '", path, "' holds no optimizer state"));
    }
    return optimizer.Load(opt);
  } catch (const std::exception& e) {
    return NotACheckpoint(path, TorchMessage(e));
  }
}

// torch.save's zip format for a dict of tensors, without the TorchScript type
// tags torch::pickle_save adds (torch.jit._pickle.restore_type_tag), which
// PyTorch's safe loader, torch.load(..., weights_only=True), refuses.
std::vector<char> SaveUntaggedStateDict(const c10::Dict<std::string, torch::Tensor>& dict) {
  std::vector<char> pickled;
  torch::jit::Pickler pickler(
      [&](const char* buf, size_t size) { pickled.insert(pickled.end(), buf, buf + size); },
      /*tensor_table=*/nullptr, /*type_renamer=*/nullptr, /*memoized_class_types=*/nullptr,
      /*get_tensor_id=*/nullptr, /*tag_aggregates=*/false);
  pickler.protocol();
  pickler.pushIValue(c10::IValue(dict));
  pickler.stop();
  std::vector<char> container;
  caffe2::serialize::PyTorchStreamWriter writer([&](const void* data, size_t size) {
    const char* bytes = static_cast<const char*>(data);
    container.insert(container.end(), bytes, bytes + size);
    return size;
  });
  torch::jit::writeArchiveAndTensors("data", pickled.data(), pickled.size(), pickler.tensorData(),
                                     writer);
  writer.writeEndOfFile();
  return container;
}

absl::Status ExportStateDict(const std::string& checkpoint_path, const std::string& out_path) {
  QSWEEP_ASSIGN_OR_RETURN(CheckpointContents c, ReadCheckpoint(checkpoint_path));
  try {
    c10::Dict<std::string, torch::Tensor> dict;
    for (const auto& [key, t] : c.state) dict.insert(key, t.detach().contiguous());
    const std::vector<char> bytes = SaveUntaggedStateDict(dict);
    std::ofstream out(out_path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.close();
    if (!out) {
      return absl::InternalError(absl::StrCat("writing '", out_path, "' failed"));
    }
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("exporting '", checkpoint_path, "' to '", out_path,
                                            "' failed: ", TorchMessage(e)));
  }
  return absl::OkStatus();
}

}  // namespace qsweep
