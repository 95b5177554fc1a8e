// Fuzz target: the bytes a peer sends (atoma.v1.Peer, src/peer/envelope.h). The input is read both
// as a SignedMessage (envelope checks: sizes, signature, method, replay window) and as a
// PeerMessage body whose ExecuteCall and attestation payloads are decoded strictly. Nothing may
// crash, whatever the bytes.
#include <google/protobuf/stubs/logging.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "atoma/consensus/attestation.h"
#include "envelope.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Invalid UTF-8 in string fields is an expected parse failure; protobuf would log each one.
  static const bool quiet = (google::protobuf::SetLogHandler(nullptr), true);
  (void)quiet;
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  atoma::consensus::Domain domain;
  domain.chain_id = 31337;
  atoma::v1::SignedMessage envelope;
  if (envelope.ParseFromString(bytes)) {
    std::string reason;
    (void)atoma::peer::Open(envelope, domain, "Execute", 1'700'000'000'000, 60'000, &reason);
  }
  atoma::v1::PeerMessage message;
  if (message.ParseFromString(bytes)) {
    if (message.has_execute()) (void)atoma::peer::DecodeExecuteCall(message.execute());
    if (message.has_attest()) {
      const std::string& a = message.attest().attestation();
      (void)atoma::consensus::DecodeAttestation(
          std::span(reinterpret_cast<const uint8_t*>(a.data()), a.size()));
    }
  }
  return 0;
}
