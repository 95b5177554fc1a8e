// The one place where absl::Status codes become gRPC status codes.
#pragma once

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace atoma::api {

// Same code and message. OK maps to OK.
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace atoma::api
