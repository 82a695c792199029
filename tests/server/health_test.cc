// The gRPC health checking service (issue 9 §4): answered without a token on
// the server's port, SERVING while it runs, not once it has shut down; other
// services still need a token on the same connection.
#include "server/health.h"

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "common/channel.h"
#include "qsweep/v1/experiments.grpc.pb.h"
#include "server/server.h"
#include "tests/test_util/test_tokens.h"

namespace qsweep {
namespace {

TEST(HealthTest, ServingWithoutATokenWhileRunningThenNot) {
  auto store = NewInMemoryStore();
  testing::AddTestTokens(*store);
  ServerOptions o;
  o.listen = "127.0.0.1:0";
  o.coordinator.tick_interval_ms = 0;
  auto server = Server::Start(o, std::move(store));
  ASSERT_TRUE(server.ok()) << server.status();
  ChannelOptions co;
  co.address = absl::StrCat("127.0.0.1:", (*server)->port());  // no token
  auto channel = MakeChannel(co);
  ASSERT_TRUE(channel.ok()) << channel.status();

  auto status = CheckHealth(*channel, "", 20000);
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(*status, ServingStatus::kServing);
  auto unknown = CheckHealth(*channel, "no.such.Service", 20000);
  EXPECT_TRUE(absl::IsNotFound(unknown.status())) << unknown.status();

  // The same tokenless connection gets nothing else.
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  v1::ListSweepsResponse r;
  EXPECT_EQ(v1::Experiments::NewStub(*channel)->ListSweeps(&ctx, {}, &r).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);

  (*server)->Shutdown();
  auto after = CheckHealth(*channel, "", 5000);
  EXPECT_FALSE(after.ok() && *after == ServingStatus::kServing);
}

TEST(HealthTest, NothingListeningIsAnError) {
  ChannelOptions co;
  co.address = "127.0.0.1:1";
  auto channel = MakeChannel(co);
  ASSERT_TRUE(channel.ok());
  auto status = CheckHealth(*channel, "", 5000);
  ASSERT_FALSE(status.ok());
  EXPECT_TRUE(absl::IsUnavailable(status.status())) << status.status();
}

}  // namespace
}  // namespace qsweep
