// Parsing of client requests that reports *why* bytes are not a valid request.
//
// Protobuf 3.x C++ rejects a proto3 message whose string field is not valid UTF-8, and gRPC then
// answers INTERNAL with an empty message before any handler runs: the client learns nothing.
// Other protobuf versions accept such strings. So the Inference service takes its requests as
// `Parsed<T>`, whose gRPC SerializationTraits (the documented hook for custom message types)
// always hand the bytes to the handler, with `status` set to INVALID_ARGUMENT naming the field
// (for example "chat.messages[1].content: not valid UTF-8") when they do not parse.
#pragma once

#include <grpcpp/impl/serialization_traits.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/status.h>

#include "absl/status/status.h"
#include "google/protobuf/message.h"

namespace atoma::api {

template <typename T>
struct Parsed {
  T message;
  absl::Status status;  // OK, or INVALID_ARGUMENT naming the field that broke parsing
};

// Parses `bytes` into `out`. A string field that is not valid UTF-8 gives INVALID_ARGUMENT naming
// it with its path (found by a lenient parse that reads string fields as bytes); other bad bytes
// give INVALID_ARGUMENT saying the request is malformed. Logs nothing (clients control the bytes).
absl::Status ParseRequest(std::string_view bytes, google::protobuf::Message* out);

}  // namespace atoma::api

namespace grpc {

template <typename T>
class SerializationTraits<atoma::api::Parsed<T>, void> {
 public:
  static Status Deserialize(ByteBuffer* buffer, atoma::api::Parsed<T>* out) {
    std::vector<Slice> slices;
    const bool dumped = buffer->Dump(&slices).ok();
    // Deserialize owns the received buffer (gRPC's protobuf traits clear it too): free it here.
    buffer->Clear();
    if (!dumped) return Status(StatusCode::INTERNAL, "cannot read the request bytes");
    std::string bytes;
    for (const Slice& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
    out->status = atoma::api::ParseRequest(bytes, &out->message);
    return Status::OK;
  }
};

}  // namespace grpc
