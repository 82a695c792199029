// The one shape of a unary RPC that needs the scheduler: post the work to the
// scheduler strand and finish the call with the status the work returns.
#pragma once

#include <grpcpp/grpcpp.h>

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/coordinator.h"
#include "server/grpc_status_util.h"

namespace qsweep {

// Runs `fn(Scheduler&) -> absl::Status` on the scheduler strand and finishes
// the unary `reactor` with that status once the strand's
// writes are committed (Coordinator::Ack). Call from a gRPC
// callback; `fn` runs later on the strand and must not block. Whatever `fn`
// captures (request, response) is owned by gRPC and lives until Finish.
template <typename Fn>
void FinishReactorOnStrand(Coordinator& coordinator, grpc::ServerUnaryReactor* reactor, Fn fn) {
  coordinator.Post([&coordinator, reactor, fn = std::move(fn)](Scheduler& scheduler) mutable {
    absl::Status status = fn(scheduler);
    // Answered once the change is durable (group commit), never before.
    coordinator.Ack([reactor, status](const absl::Status& committed) {
      // A call that failed changed nothing (its writes were undone): its own
      // error says why. A call that succeeded is answered by the commit.
      reactor->Finish(ToGrpcStatus(status.ok() ? committed : status));
    });
  });
}

// FinishReactorOnStrand for the default reactor of `ctx`, returned.
template <typename Fn>
grpc::ServerUnaryReactor* FinishOnStrand(Coordinator& coordinator, grpc::CallbackServerContext* ctx,
                                         Fn fn) {
  auto* reactor = ctx->DefaultReactor();
  FinishReactorOnStrand(coordinator, reactor, std::move(fn));
  return reactor;
}

// Moves an OK `result` into `*out`; returns its status.
template <typename T>
absl::Status MoveInto(absl::StatusOr<T> result, T* out) {
  if (result.ok()) *out = std::move(*result);
  return result.status();
}

}  // namespace qsweep
