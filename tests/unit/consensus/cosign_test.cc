#include "atoma/consensus/cosign.h"

#include <gtest/gtest.h>

#include <vector>

#include "vectors.h"

namespace atoma::consensus {
namespace {

using testing::Hex;

Hash256 Filled(uint8_t b) {
  Hash256 h;
  h.fill(b);
  return h;
}

crypto::PrivateKey Key(uint8_t seed) {
  std::array<uint8_t, 32> secret{};
  secret.fill(seed);
  return *crypto::PrivateKey::FromBytes(secret);
}

// Independent vector (Python hashlib over the spec's bytes):
//   H(tag, b) = sha256(tag ‖ 0x00 ‖ b); chain over digests bytes(range(32)), 0xaa * 32;
//   CosignDigest with chain id 31337, ledger 0x11 * 20, count 2.
TEST(CosignTest, ChainAndDigestMatchIndependentVector) {
  Hash256 d1;
  for (size_t i = 0; i < d1.size(); ++i) d1[i] = static_cast<uint8_t>(i);
  const Hash256 d2 = Filled(0xaa);
  EXPECT_EQ(Hex(CosignChain(std::vector<Hash256>{})), std::string(64, '0'));
  EXPECT_EQ(Hex(CosignChain(std::vector<Hash256>{d1})),
            "8986749443c7a2610de918fef2abac10985075486842f42e8e81dedf0a4fda37");
  const Hash256 chain = CosignChain(std::vector<Hash256>{d1, d2});
  EXPECT_EQ(Hex(chain), "eb43b624c76752b2c1881daf8731c0baaecade38c5eb339ddf462e31b32e6c71");
  Domain domain{31337, {}};
  domain.ledger.fill(0x11);
  EXPECT_EQ(Hex(CosignDigest(domain, chain, 2)),
            "d9047f14b6950444df4bb87c7112a46a62ccdb190c9ae62eaa4d42939ea4e194");
  const std::vector<CosignEntry> entries = {{d1, {}}, {d2, {}}};
  EXPECT_EQ(CosignDigestOf(domain, entries), CosignDigest(domain, chain, 2));
}

TEST(CosignTest, SignsOnlyWhatTheKeySignedAndVerifies) {
  const crypto::PrivateKey member = Key(7);
  const crypto::PrivateKey other = Key(9);
  const Domain domain{5, {}};
  std::vector<CosignEntry> entries;
  for (uint8_t b : {1, 2, 3}) entries.push_back({Filled(b), member.Sign(Filled(b))});
  absl::StatusOr<crypto::Signature> cosig = MakeCosignature(domain, entries, member);
  ASSERT_TRUE(cosig.ok()) << cosig.status();
  EXPECT_TRUE(VerifyCosignature(domain, member.address(), entries, *cosig).ok());

  // Another member, order, count, domain: the co-signature no longer verifies.
  EXPECT_EQ(VerifyCosignature(domain, other.address(), entries, *cosig).code(),
            absl::StatusCode::kPermissionDenied);
  std::vector<CosignEntry> swapped = {entries[1], entries[0], entries[2]};
  EXPECT_FALSE(VerifyCosignature(domain, member.address(), swapped, *cosig).ok());
  std::vector<CosignEntry> fewer(entries.begin(), entries.begin() + 2);
  EXPECT_FALSE(VerifyCosignature(domain, member.address(), fewer, *cosig).ok());
  EXPECT_FALSE(VerifyCosignature(Domain{6, {}}, member.address(), entries, *cosig).ok());

  // An entry the member never signed (another key's signature, or its signature over another
  // digest) is refused, naming the entry.
  std::vector<CosignEntry> forged = entries;
  forged[2].signature = other.Sign(forged[2].digest);
  absl::StatusOr<crypto::Signature> refused = MakeCosignature(domain, forged, member);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(refused.status().message().find("entry 2"), std::string::npos);
  forged = entries;
  forged[1].digest = Filled(0x42);
  EXPECT_EQ(MakeCosignature(domain, forged, member).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(MakeCosignature(domain, {}, member).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace atoma::consensus
