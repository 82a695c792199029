// Helpers shared by the Store implementations.
#include "storage/store.h"

#include "absl/strings/str_cat.h"

namespace qsweep {

absl::Status CheckExpected(const v1::Job& stored, const JobUpdate& update) {
  if (stored.lease_epoch() == update.expected_epoch && stored.state() == update.expected_state)
    return absl::OkStatus();
  return absl::FailedPreconditionError(
      absl::StrCat("job '", stored.id(), "' changed under this writer: it is stored ",
                   v1::JobState_Name(stored.state()), " at epoch ", stored.lease_epoch(),
                   ", expected ", v1::JobState_Name(update.expected_state), " at epoch ",
                   update.expected_epoch, " (is another qsweep-server using this database?)"));
}

absl::Status Store::LinkArtifact(const v1::ArtifactInfo& info) {
  absl::StatusOr<std::string> bytes = GetArtifactBytes(info.sha256());
  if (!bytes.ok()) return bytes.status();
  return PutArtifact(info, *bytes);
}

absl::Status Store::PutResumeState(const v1::ArtifactInfo& info, const std::string&) {
  return absl::UnimplementedError(
      absl::StrCat("this store keeps no resume states (job ", info.job_id(), ")"));
}

absl::StatusOr<std::string> Store::GetResumeState(const std::string& job_id, v1::ArtifactInfo*) {
  return absl::NotFoundError(absl::StrCat("job '", job_id, "' has no resume state"));
}

absl::Status Store::DeleteResumeState(const std::string&) { return absl::OkStatus(); }

}  // namespace qsweep
