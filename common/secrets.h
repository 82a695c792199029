// Bearer tokens and the files that hold secrets: the token format
// "qsw_<id>_<secret>", secure random bytes, and 0600 files. Used by the server
// (minting, hashing), the CLI and the worker (reading their token file).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace qsweep {

// `n` bytes from the kernel's CSPRNG (getrandom), as lowercase hex (2n
// characters). Aborts the process if the kernel cannot provide them: an id or
// a secret must never fall back to a predictable source.
std::string SecureRandomHex(size_t n);

// Constant-time equality of two strings of the same length (false otherwise).
bool ConstantTimeEquals(std::string_view a, std::string_view b);

// A freshly minted token: its public id and the whole secret string.
struct MintedToken {
  std::string id;      // 12 lowercase hex digits
  std::string secret;  // "qsw_<id>_<64 hex digits>" (32 random bytes)
};
MintedToken MintToken();

// The id of a well-formed token string, or INVALID_ARGUMENT saying what is
// wrong (never echoing the secret).
absl::StatusOr<std::string> TokenIdOf(std::string_view token);

// What the server stores for a token: the hex SHA-256 of the whole string.
std::string TokenSha256(std::string_view token);

// Who besides the file's owner may read a token file.
enum class TokenFileAccess {
  kOwnerOnly,  // 0600, 0400
  // Also group read (0640, 0440), never group write or others: a Kubernetes
  // Secret mounted in a pod with fsGroup (the kubelet adds group read).
  kOwnerAndGroupRead,
};

// Reads a token from `path`: a regular file (a final symlink is not
// followed), with no more access than `access` allows (FAILED_PRECONDITION
// naming the mode and the chmod to run), holding one well-formed token
// (surrounding whitespace ignored). NOT_FOUND if missing.
absl::StatusOr<std::string> ReadTokenFile(const std::string& path,
                                          TokenFileAccess access = TokenFileAccess::kOwnerOnly);

// Writes `content` to `path` atomically with mode 0600, creating missing parent
// folders with mode 0700.
absl::Status WriteSecretFile(const std::string& path, std::string_view content);

// Where clients and workers look for their token when neither --token-file nor
// $QSWEEP_TOKEN_FILE names one: $XDG_CONFIG_HOME/qsweep/token, else
// ~/.config/qsweep/token.
std::string DefaultTokenPath();

// The token file to use: `flag` if not empty, else $QSWEEP_TOKEN_FILE, else
// DefaultTokenPath().
std::string ResolveTokenPath(const std::string& flag);

// True if `address` (host:port, [v6]:port or unix:path) can only be reached
// from this machine: 127.0.0.0/8, ::1, localhost, or a Unix socket.
bool IsLocalAddress(std::string_view address);

}  // namespace qsweep
