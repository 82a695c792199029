// Fixed bearer tokens for tests that talk to a server they started: the same
// secrets go into every store, so a test can restart its server on a new
// store (or the same SQLite file) and keep its identities.
#pragma once

#include <string>

#include "common/secrets.h"
#include "qsweep/v1/common.pb.h"
#include "storage/store.h"

namespace qsweep::testing {

struct TestTokens {
  std::string admin;    // role admin, owner "admin"
  std::string alice;    // role user, owner "alice"
  std::string bob;      // role user, owner "bob"
  std::string worker;   // role worker, owner "pool"
  std::string worker2;  // role worker, owner "pool" (a second worker identity)
};

inline std::string FixedToken(char c) {
  return "qsw_" + std::string(12, c) + "_" + std::string(64, c);
}

// Adds the tokens to `store` (those already there are kept) and returns them.
inline TestTokens AddTestTokens(Store& store) {
  TestTokens t{FixedToken('a'), FixedToken('b'), FixedToken('c'), FixedToken('d'), FixedToken('e')};
  auto add = [&](const std::string& secret, v1::Role role, const std::string& owner) {
    v1::Token record;
    record.set_id(*TokenIdOf(secret));
    record.set_sha256(TokenSha256(secret));
    record.set_role(role);
    record.set_owner(owner);
    record.set_name("test");
    store.CreateToken(record).IgnoreError();  // ALREADY_EXISTS after a restart
  };
  add(t.admin, v1::ROLE_ADMIN, "admin");
  add(t.alice, v1::ROLE_USER, "alice");
  add(t.bob, v1::ROLE_USER, "bob");
  add(t.worker, v1::ROLE_WORKER, "pool");
  add(t.worker2, v1::ROLE_WORKER, "pool");
  return t;
}

}  // namespace qsweep::testing
