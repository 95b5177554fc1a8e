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

  CertificateContext ctx;
  ctx.domain.chain_id = 31337;
  ctx.epoch = 12;
  for (uint8_t i = 1; i <= 6; ++i) {
    Candidate c;
    c.address.fill(i);
    c.stake = atoma::Uint256(i);
    ctx.registry.push_back(c);
  }
  ConsensusOutput output;
  output.token_ids = {1, 2, 3};
  // Addresses 0x0101.., 0x0202.. have no known private key, so no signature can recover to them:
  // a certificate that passes means verification skipped a check.
  if (VerifyXvCertificate(*certificate, output, ctx).ok()) std::abort();
  return 0;
}
