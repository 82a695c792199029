// Who is calling: the identity a bearer token stands for, as the scheduler and
// the service adapters see it. Set by server/auth.h before any handler runs.
#pragma once

#include <cctype>
#include <string>

#include "qsweep/v1/common.pb.h"

namespace qsweep {

// "admin", "user", "worker": the proto's own names without the prefix.
inline std::string RoleText(v1::Role role) {
  std::string name = v1::Role_Name(role);  // ROLE_ADMIN, ...
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return name.rfind("role_", 0) == 0 ? name.substr(5) : name;
}

struct Caller {
  std::string token_id;  // the token's public id
  v1::Role role = v1::ROLE_UNSPECIFIED;
  std::string owner;  // the user (or worker pool) the token acts for

  bool is_admin() const { return role == v1::ROLE_ADMIN; }
  // Admins may act on every user's sweeps; users on their own only.
  bool MayAccess(const std::string& sweep_owner) const {
    return is_admin() || (!owner.empty() && owner == sweep_owner);
  }
};

}  // namespace qsweep
