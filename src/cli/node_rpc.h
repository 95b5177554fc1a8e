// Helpers of the atoma-cli commands that call a node's gRPC API (generate, authorize, the operator
// commands): the channel, failing a call, the model a node serves, and the random and hex values a
// signed request needs. Defined in generate.cc. Each *OrFail / Fail* ends the command with exit
// status 1 (main catches CLI::RuntimeError).
#pragma once

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <memory>
#include <string>

#include "atoma/crypto/sha256.h"
#include "atoma/v1/inference.grpc.pb.h"

namespace atoma::cli {

// A plaintext channel to `addr` (host:port).
std::shared_ptr<grpc::Channel> Connect(const std::string& addr);

// Prints "atoma-cli <command>: <CODE>: <message>" to stderr and exits with status 1.
[[noreturn]] void FailCall(const char* command, const grpc::Status& status);

// 32 bytes from 64 hex digits (with or without "0x"); Fail naming `what` otherwise.
crypto::Hash256 ParseHash32OrFail(const std::string& hex, const std::string& what);

// The model as the node describes it (digest and fingerprint name its echelon); FailCall with
// NOT_FOUND when the node does not serve it.
v1::ModelInfo FindModelOrFail(v1::Inference::Stub& stub, const std::string& model,
                              const char* command);

// A client nonce from the kernel's CSPRNG: unpredictable, so two clients do not collide.
uint64_t RandomNonce();

}  // namespace atoma::cli
