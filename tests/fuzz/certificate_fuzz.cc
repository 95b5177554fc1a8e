// Fuzz target: certificate bytes (from clients, files and the ledger's settlement input).
// DecodeCertificate and DecodeRequest must return a Status, never crash; an accepted certificate
// re-encodes to exactly the input, and VerifyCertificate on it (with a fixed small registry) gives
// a verdict without crashing. A fuzzed certificate cannot carry valid signatures for the fixed
// registry, so it must never verify. Broken promises abort.
#include <cstdint>
#include <cstdlib>
#include <span>

#include "atoma/consensus/attestation.h"
#include "unforgeable_context.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace atoma::consensus;
  const std::span<const uint8_t> input(data, size);
  {
    Decoder d(input);
    (void)DecodeRequest(d);
  }
  auto certificate = DecodeCertificate(input);
  if (!certificate.ok()) return 0;
  const std::vector<uint8_t> again = EncodeCertificate(*certificate);
  if (!std::equal(again.begin(), again.end(), input.begin(), input.end())) std::abort();

  // No key controls the registry's addresses (unforgeable_context.h).
  if (VerifyCertificate(*certificate, atoma::fuzz::SomeOutput(), atoma::fuzz::UnforgeableContext(4))
          .ok()) {
    std::abort();
  }
  return 0;
}
