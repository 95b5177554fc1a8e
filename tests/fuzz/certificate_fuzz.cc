// Fuzz target: certificate bytes (from clients, files and the ledger's settlement input).
// DecodeCertificate and DecodeRequest must return a Status, never crash; an accepted certificate
// re-encodes to exactly the input, and VerifyCertificate on it (with a fixed small registry) gives
// a verdict without crashing. A fuzzed certificate cannot carry valid signatures for the fixed
// registry, so it must never verify. Broken promises abort.
#include <cstdint>
#include <cstdlib>
#include <span>

#include "atoma/consensus/attestation.h"

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

  CertificateContext ctx;
  ctx.domain.chain_id = 31337;
  ctx.epoch = 12;
  for (uint8_t i = 1; i <= 4; ++i) {
    Candidate c;
    c.address.fill(i);
    c.stake = atoma::Uint256(i);
    ctx.registry.push_back(c);
  }
  ConsensusOutput output;
  output.token_ids = {1, 2, 3};
  // Member addresses 0x0101.., 0x0202.. have no known private key, so no signature can recover
  // to them: a certificate that passes means verification skipped a check.
  if (VerifyCertificate(*certificate, output, ctx).ok()) std::abort();
  return 0;
}
