// Batch co-signatures (docs/ledger_evm.md "Co-signed batches"): instead of one signature per
// committee slot, a member signs once for all of its slots in a settlement batch, over the ordered
// list of their attestation digests:
//   chain_0 = 32 zero bytes
//   chain_k = H("atoma/cosign-chain", chain_{k-1} ‖ digest_k)
//   CosignDigest = H("atoma/cosign", chain_id u64 ‖ ledger (20) ‖ chain_n ‖ u32 n)
// A member co-signs only digests it signed before (each entry carries the member's own signature
// over its digest), so a co-signature vouches for nothing the member did not already attest.
//
// Pure functions over plain structs; thread-safe.
#pragma once

#include <cstddef>
#include <span>

#include "absl/status/statusor.h"
#include "atoma/consensus/attestation.h"

namespace atoma::consensus {

// One attestation a member vouches for: its AttestationDigest and the member's signature over it.
struct CosignEntry {
  Hash256 digest{};
  crypto::Signature signature{};
  friend bool operator==(const CosignEntry&, const CosignEntry&) = default;
};

// The most entries one co-signature covers: a settlement batch holds at most 1,024 certificates
// (LedgerClient::kMaxSettlementBatch) of at most kMaxCommitteeSize slots.
inline constexpr size_t kMaxCosignEntries = 1024 * kMaxCommitteeSize;

// chain_n over `digests` in order (chain_0 for none).
Hash256 CosignChain(std::span<const Hash256> digests);
Hash256 CosignChainStep(const Hash256& chain, const Hash256& digest);
// What a member signs for a batch in which it has `count` entries whose chain is `chain`.
Hash256 CosignDigest(const Domain& domain, const Hash256& chain, uint32_t count);
// CosignDigest over the digests of `entries`.
Hash256 CosignDigestOf(const Domain& domain, std::span<const CosignEntry> entries);

// Signs CosignDigestOf(domain, entries) with `key` after checking that every entry's signature
// recovers to key's address over its digest. INVALID_ARGUMENT for no entries or more than
// kMaxCosignEntries; PERMISSION_DENIED naming the first entry this key never signed.
absl::StatusOr<crypto::Signature> MakeCosignature(const Domain& domain,
                                                  std::span<const CosignEntry> entries,
                                                  const crypto::PrivateKey& key);

// OK when `cosignature` recovers to `member` over CosignDigestOf(domain, entries);
// PERMISSION_DENIED otherwise.
absl::Status VerifyCosignature(const Domain& domain, const Address& member,
                               std::span<const CosignEntry> entries,
                               const crypto::Signature& cosignature);

}  // namespace atoma::consensus
