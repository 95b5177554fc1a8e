// Fuzz-only: a verification context whose registry holds `nodes` candidates at addresses 0x0101..,
// 0x0202.., ... that no known private key controls, so no signature can recover to them: a
// certificate that verifies against it means verification skipped a check.
#pragma once

#include <cstdint>

#include "atoma/common/uint256.h"
#include "atoma/consensus/attestation.h"

namespace atoma::fuzz {

inline consensus::CertificateContext UnforgeableContext(uint8_t nodes) {
  consensus::CertificateContext ctx;
  ctx.domain.chain_id = 31337;
  ctx.epoch = 12;
  for (uint8_t i = 1; i <= nodes; ++i) {
    consensus::Candidate c;
    c.address.fill(i);
    c.stake = Uint256(i);
    ctx.registry.push_back(c);
  }
  return ctx;
}

// A short output that every decoded certificate is checked against.
inline consensus::ConsensusOutput SomeOutput() {
  consensus::ConsensusOutput output;
  output.token_ids = {1, 2, 3};
  return output;
}

}  // namespace atoma::fuzz
