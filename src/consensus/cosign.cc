#include "atoma/consensus/cosign.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "atoma/common/status.h"

namespace atoma::consensus {

Hash256 CosignChainStep(const Hash256& chain, const Hash256& digest) {
  Encoder e;
  e.Hash(chain).Hash(digest);
  return TaggedHash("atoma/cosign-chain", e);
}

Hash256 CosignChain(std::span<const Hash256> digests) {
  Hash256 chain{};
  for (const Hash256& d : digests) chain = CosignChainStep(chain, d);
  return chain;
}

Hash256 CosignDigest(const Domain& domain, const Hash256& chain, uint32_t count) {
  Encoder e;
  e.U64(domain.chain_id).Addr(domain.ledger).Hash(chain).U32(count);
  return TaggedHash("atoma/cosign", e);
}

Hash256 CosignDigestOf(const Domain& domain, std::span<const CosignEntry> entries) {
  Hash256 chain{};
  for (const CosignEntry& entry : entries) chain = CosignChainStep(chain, entry.digest);
  return CosignDigest(domain, chain, static_cast<uint32_t>(entries.size()));
}

absl::StatusOr<crypto::Signature> MakeCosignature(const Domain& domain,
                                                  std::span<const CosignEntry> entries,
                                                  const crypto::PrivateKey& key) {
  if (entries.empty() || entries.size() > kMaxCosignEntries) {
    return absl::InvalidArgumentError(
        absl::StrCat("co-signing takes 1..", kMaxCosignEntries, " entries, not ", entries.size()));
  }
  for (size_t i = 0; i < entries.size(); ++i) {
    absl::StatusOr<Address> signer =
        crypto::RecoverAddress(entries[i].digest, entries[i].signature);
    if (!signer.ok() || *signer != key.address()) {
      return absl::PermissionDeniedError(absl::StrCat(
          "co-sign entry ", i, ": its signature is not ", crypto::AddressToString(key.address()),
          "'s over its digest (only attestations this node signed are co-signed)"));
    }
  }
  return key.Sign(CosignDigestOf(domain, entries));
}

absl::Status VerifyCosignature(const Domain& domain, const Address& member,
                               std::span<const CosignEntry> entries,
                               const crypto::Signature& cosignature) {
  absl::StatusOr<Address> signer =
      crypto::RecoverAddress(CosignDigestOf(domain, entries), cosignature);
  if (!signer.ok()) {
    return absl::PermissionDeniedError(
        absl::StrCat("co-signature is invalid: ", signer.status().message()));
  }
  if (*signer != member) {
    return absl::PermissionDeniedError(
        absl::StrCat("co-signature recovers to ", crypto::AddressToString(*signer), ", not to ",
                     crypto::AddressToString(member), " (another key, list of entries or ledger)"));
  }
  return absl::OkStatus();
}

}  // namespace atoma::consensus
