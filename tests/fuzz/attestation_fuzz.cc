// Fuzz target: attestation bytes from peers (Peer.Attest) and files. DecodeAttestation must
// return a Status, never crash; whatever it accepts re-encodes to exactly the input (one encoding
// per attestation), and VerifyAttestation on it returns a Status. Broken promises abort.
#include <cstdint>
#include <cstdlib>
#include <span>

#include "atoma/consensus/attestation.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace atoma::consensus;
  const std::span<const uint8_t> input(data, size);
  auto attestation = DecodeAttestation(input);
  if (!attestation.ok()) return 0;
  const std::vector<uint8_t> again = EncodeAttestation(*attestation);
  if (!std::equal(again.begin(), again.end(), input.begin(), input.end())) std::abort();
  (void)VerifyAttestation(*attestation, attestation->domain, attestation->epoch);
  return 0;
}
