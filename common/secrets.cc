#include "common/secrets.h"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/sha256.h"

namespace qsweep {
namespace {

constexpr char kPrefix[] = "qsw_";
constexpr size_t kPrefixSize = 4;
constexpr size_t kIdHex = 12;
constexpr size_t kSecretHex = 64;

bool IsLowerHex(std::string_view s) {
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

}  // namespace

std::string SecureRandomHex(size_t n) {
  std::string bytes(n, '\0');
  size_t got = 0;
  while (got < n) {
    ssize_t r = getrandom(bytes.data() + got, n - got, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      std::fprintf(stderr, "qsweep: getrandom failed: %s\n", std::strerror(errno));
      std::abort();
    }
    got += static_cast<size_t>(r);
  }
  std::string hex;
  hex.reserve(2 * n);
  for (unsigned char c : bytes) absl::StrAppendFormat(&hex, "%02x", c);
  return hex;
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i)
    diff |= static_cast<unsigned char>(a[i]) ^ static_cast<unsigned char>(b[i]);
  return diff == 0;
}

MintedToken MintToken() {
  MintedToken t;
  t.id = SecureRandomHex(kIdHex / 2);
  t.secret = absl::StrCat(kPrefix, t.id, "_", SecureRandomHex(kSecretHex / 2));
  return t;
}

absl::StatusOr<std::string> TokenIdOf(std::string_view token) {
  const size_t want = kPrefixSize + kIdHex + 1 + kSecretHex;
  if (token.substr(0, kPrefixSize) != std::string_view(kPrefix) || token.size() != want ||
      token[kPrefixSize + kIdHex] != '_' || !IsLowerHex(token.substr(kPrefixSize, kIdHex)) ||
      !IsLowerHex(token.substr(kPrefixSize + kIdHex + 1)))
    return absl::InvalidArgumentError(
        absl::StrCat("malformed token: expected qsw_<12 hex digits>_<64 hex digits> (", want,
                     " characters), got ", token.size(), " characters"));
  return std::string(token.substr(kPrefixSize, kIdHex));
}

std::string TokenSha256(std::string_view token) { return Sha256Hex(token); }

absl::StatusOr<std::string> ReadTokenFile(const std::string& path, TokenFileAccess access) {
  const bool group_read = access == TokenFileAccess::kOwnerAndGroupRead;
  int fd = open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    if (errno == ENOENT)
      return absl::NotFoundError(absl::StrCat("token file '", path, "' does not exist"));
    return absl::PermissionDeniedError(
        absl::StrCat("token file '", path, "' cannot be opened: ", std::strerror(errno)));
  }
  struct stat st {};
  std::string text;
  absl::Status status;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    status = absl::FailedPreconditionError(
        absl::StrCat("token file '", path, "' is not a regular file"));
  } else if ((st.st_mode & (group_read ? 027 : 077)) != 0) {
    status = absl::FailedPreconditionError(absl::StrFormat(
        group_read
            ? "token file '%s' has mode %04o: others may read it or group may write it; "
              "run chmod 640 '%s'"
            : "token file '%s' has mode %04o: group or others may read it; run chmod 600 '%s'",
        path, st.st_mode & 07777, path));
  } else if (st.st_size > 4096) {
    status = absl::FailedPreconditionError(
        absl::StrCat("token file '", path, "' is larger than 4096 bytes; it holds one token"));
  } else {
    char buf[4097];
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    if (n < 0)
      status = absl::PermissionDeniedError(
          absl::StrCat("token file '", path, "' cannot be read: ", std::strerror(errno)));
    else
      text.assign(buf, static_cast<size_t>(n));
  }
  close(fd);
  if (!status.ok()) return status;
  std::string token(absl::StripAsciiWhitespace(text));
  auto id = TokenIdOf(token);
  if (!id.ok())
    return absl::FailedPreconditionError(
        absl::StrCat("token file '", path, "': ", id.status().message()));
  return token;
}

absl::Status WriteSecretFile(const std::string& path, std::string_view content) {
  namespace fs = std::filesystem;
  const fs::path target(path);
  std::error_code ec;
  if (target.has_parent_path() && !fs::exists(target.parent_path(), ec)) {
    fs::create_directories(target.parent_path(), ec);
    if (ec)
      return absl::PermissionDeniedError(absl::StrCat(
          "cannot create folder '", target.parent_path().string(), "': ", ec.message()));
    fs::permissions(target.parent_path(), fs::perms::owner_all, ec);
  }
  const std::string tmp = absl::StrCat(path, ".tmp-", SecureRandomHex(6));
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0)
    return absl::PermissionDeniedError(
        absl::StrCat("cannot create '", tmp, "': ", std::strerror(errno)));
  bool ok = fchmod(fd, 0600) == 0;
  size_t off = 0;
  while (ok && off < content.size()) {
    ssize_t n = write(fd, content.data() + off, content.size() - off);
    if (n < 0 && errno == EINTR) continue;
    ok = n > 0;
    if (ok) off += static_cast<size_t>(n);
  }
  ok = ok && fsync(fd) == 0;
  const int err = errno;
  close(fd);
  if (!ok || rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = ok ? errno : err;
    unlink(tmp.c_str());
    return absl::PermissionDeniedError(
        absl::StrCat("cannot write '", path, "': ", std::strerror(e)));
  }
  return absl::OkStatus();
}

std::string DefaultTokenPath() {
  const char* xdg = std::getenv("XDG_CONFIG_HOME");
  if (xdg && *xdg) return absl::StrCat(xdg, "/qsweep/token");
  const char* home = std::getenv("HOME");
  return absl::StrCat(home && *home ? home : ".", "/.config/qsweep/token");
}

std::string ResolveTokenPath(const std::string& flag) {
  if (!flag.empty()) return flag;
  const char* env = std::getenv("QSWEEP_TOKEN_FILE");
  if (env && *env) return env;
  return DefaultTokenPath();
}

bool IsLocalAddress(std::string_view address) {
  if (address.substr(0, 5) == "unix:") return true;
  std::string_view host = address;
  if (!host.empty() && host.front() == '[') {
    size_t close = host.find(']');
    if (close == std::string_view::npos) return false;
    host = host.substr(1, close - 1);
  } else {
    size_t colon = host.rfind(':');
    if (colon != std::string_view::npos) host = host.substr(0, colon);
  }
  if (host == "localhost" || host == "::1") return true;
  // 127.0.0.0/8 in dotted-quad form, four decimal parts each <= 255.
  if (host.substr(0, 4) != "127.") return false;
  int parts = 0, value = -1;
  for (char c : host) {
    if (c == '.') {
      if (value < 0) return false;
      ++parts;
      value = -1;
    } else if (c >= '0' && c <= '9') {
      value = (value < 0 ? 0 : value) * 10 + (c - '0');
      if (value > 255) return false;
    } else {
      return false;
    }
  }
  return parts == 3 && value >= 0;
}

}  // namespace qsweep
