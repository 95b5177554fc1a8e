// Fuzz target: cross-validation certificate bytes (from clients, files and settlement input).
// DecodeXvCertificate must return a Status, never crash; an accepted certificate re-encodes to
// exactly the input (one encoding per certificate), the coin over its attestations stays below
// 10^6, and VerifyXvCertificate on it (with a fixed small registry) gives a verdict without
// crashing. A fuzzed certificate cannot carry valid signatures for the fixed registry, so it must
// never verify. Broken promises abort.
//
// Seeds (corpus/xv): well-formed 0x02 encodings with arbitrary signatures, one per outcome
// (unrevealed, revealed without validators, revealed with two validators), in the layout of
// docs/protocol.md ("Cross-validation") and tools/vectors/gen_fuzz_seeds.py.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "atoma/consensus/xv.h"
#include "unforgeable_context.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace atoma::consensus;
  const std::span<const uint8_t> input(data, size);
  auto certificate = DecodeXvCertificate(input);
  if (!certificate.ok()) return 0;
  const std::vector<uint8_t> again = EncodeXvCertificate(*certificate);
  if (!std::equal(again.begin(), again.end(), input.begin(), input.end())) std::abort();
  if (certificate->base.request.security.mode != SecurityMode::kCrossValidation) std::abort();

  const XvSalt salt = certificate->salt.value_or(XvSalt{});
  for (const Attestation& a : certificate->base.attestations) {
    if (XvCoin(salt, a) >= kXvCoinScale) std::abort();
  }

  // No key controls the registry's addresses (unforgeable_context.h).
  if (VerifyXvCertificate(*certificate, atoma::fuzz::SomeOutput(),
                          atoma::fuzz::UnforgeableContext(6))
          .ok()) {
    std::abort();
  }
  return 0;
}
