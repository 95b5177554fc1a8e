#include "atoma/consensus/request.h"

#include <gtest/gtest.h>

#include "vectors.h"

namespace atoma::consensus {
namespace {

using testing::Bytes;
using testing::Fixed;
using testing::Hex;

ConsensusRequest RequestFromJson(const nlohmann::json& j) {
  ConsensusRequest r;
  r.model_digest = Fixed<32>(j.at("model_digest"));
  r.prompt_token_ids = j.at("prompt_token_ids").get<std::vector<uint32_t>>();
  r.temperature_micro = j.at("temperature_micro");
  r.top_p_micro = j.at("top_p_micro");
  r.top_k = j.at("top_k");
  r.ignore_eos = j.at("ignore_eos");
  r.max_tokens = j.at("max_tokens");
  for (const auto& s : j.at("stop_strings")) {
    const auto b = Bytes(s);
    r.stop_strings.emplace_back(b.begin(), b.end());
  }
  r.stop_token_ids = j.at("stop_token_ids").get<std::vector<uint32_t>>();
  r.seed = j.at("seed");
  const auto& sec = j.at("security");
  const std::string mode = sec.at("mode");
  if (mode == "sampling") {
    r.security.mode = SecurityMode::kSampling;
    r.security.n = sec.at("n");
  } else if (mode == "cross_validation") {
    r.security.mode = SecurityMode::kCrossValidation;
    r.security.p_micro = sec.at("p_micro");
    r.security.k = sec.at("k");
    r.security.salt_hash = Fixed<32>(sec.at("salt_hash"));
  }
  r.max_fee = Uint256::FromDecimal(j.at("max_fee").get<std::string>()).value();
  r.client = Fixed<20>(j.at("client"));
  r.client_nonce = j.at("client_nonce");
  r.epoch = j.at("epoch");
  return r;
}

TEST(RequestTest, MatchesIndependentVectors) {
  const auto vectors = testing::LoadVectors("request.json");
  ASSERT_GE(vectors.at("requests").size(), 4u);
  for (const auto& v : vectors.at("requests")) {
    SCOPED_TRACE(v.at("name").get<std::string>());
    const ConsensusRequest r = RequestFromJson(v.at("request"));
    Encoder e;
    EncodeRequest(r, e);
    EXPECT_EQ(Hex(e.bytes()), v.at("request_encoding").get<std::string>());
    const Hash256 rid = RequestId(r);
    EXPECT_EQ(Hex(rid), v.at("request_id").get<std::string>());

    // The strict decoder reads the encoding back to the same request.
    Decoder d(e.bytes());
    auto decoded = DecodeRequest(d);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_TRUE(d.ExpectEnd("request").ok());
    EXPECT_EQ(*decoded, r);

    ConsensusOutput o;
    o.token_ids = v.at("output").at("token_ids").get<std::vector<uint32_t>>();
    o.finish_reason = static_cast<FinishReason>(v.at("output").at("finish_reason").get<int>());
    std::vector<Address> committee;
    for (const auto& a : v.at("committee")) committee.push_back(Fixed<20>(a));
    const auto proofs = OutputProofs(rid, o, committee);
    ASSERT_EQ(proofs.size(), committee.size());
    for (size_t i = 0; i < proofs.size(); ++i) {
      EXPECT_EQ(Hex(proofs[i]), v.at("proofs")[i].get<std::string>());
      EXPECT_EQ(OutputProof(rid, o, committee[i]), proofs[i]);
    }
    EXPECT_EQ(Hex(Commitment(proofs)), v.at("commitment").get<std::string>());
    EXPECT_EQ(Hex(OutputMerkleRoot(o.token_ids)), v.at("merkle_root").get<std::string>());
  }
  for (const auto& v : vectors.at("merkle")) {
    const auto ids = v.at("token_ids").get<std::vector<uint32_t>>();
    EXPECT_EQ(Hex(OutputMerkleRoot(ids)), v.at("root").get<std::string>()) << v.at("name");
  }
}

TEST(RequestTest, EveryFieldChangesTheId) {
  ConsensusRequest base;
  base.prompt_token_ids = {1, 2, 3};
  base.security = {SecurityMode::kSampling, 3, 0, 0, {}};
  const Hash256 id = RequestId(base);
  std::vector<ConsensusRequest> variants(16, base);
  variants[0].model_digest[0] = 1;
  variants[1].prompt_token_ids.push_back(4);
  variants[2].temperature_micro = 1;
  variants[3].top_p_micro = 999'999;
  variants[4].top_k = 1;
  variants[5].ignore_eos = true;
  variants[6].max_tokens = 1;
  variants[7].stop_strings = {""};
  variants[8].stop_token_ids = {0};
  variants[9].seed = 1;
  variants[10].security.n = 4;
  variants[11].security = {SecurityMode::kNone, 0, 0, 0, {}};
  variants[12].max_fee = Uint256(1);
  variants[13].client[0] = 1;
  variants[14].client_nonce = 1;
  variants[15].epoch = 1;
  for (size_t i = 0; i < variants.size(); ++i) EXPECT_NE(RequestId(variants[i]), id) << i;
  // Moving a token between the prompt and the stop list must change the id too (list counts
  // make the encoding prefix-free).
  ConsensusRequest a = base, b = base;
  b.prompt_token_ids = {1, 2};
  b.stop_token_ids = {3};
  EXPECT_NE(RequestId(a), RequestId(b));
}

TEST(RequestTest, DecoderRejectsBadFields) {
  ConsensusRequest r;
  r.security = {SecurityMode::kSampling, 3, 0, 0, {}};
  auto encode = [](const ConsensusRequest& req) {
    Encoder e;
    EncodeRequest(req, e);
    return e.Take();
  };
  auto decode = [](const std::vector<uint8_t>& bytes) {
    Decoder d(bytes);
    return DecodeRequest(d).status();
  };
  EXPECT_TRUE(decode(encode(r)).ok());
  ConsensusRequest bad = r;
  bad.security.n = 0;
  EXPECT_FALSE(decode(encode(bad)).ok());
  bad.security.n = kMaxCommitteeSize + 1;
  EXPECT_FALSE(decode(encode(bad)).ok());
  bad = r;
  bad.security = {SecurityMode::kCrossValidation, 0, 1'000'001, 1, {}};
  EXPECT_FALSE(decode(encode(bad)).ok());
  bad.stop_strings.assign(kMaxStopStrings + 1, "x");
  bad.security = r.security;
  EXPECT_FALSE(decode(encode(bad)).ok());
  bad = r;
  bad.stop_strings = {std::string(kMaxStopStringBytes + 1, 'x')};
  EXPECT_FALSE(decode(encode(bad)).ok());
  // An unknown security mode, a token id above 2^32 - 1 and ignore_eos = 2, by hand.
  std::vector<uint8_t> bytes = encode(r);
  // Layout: digest(32) count(4) temperature(8) top_p(8) top_k(8) ignore_eos(8) ...
  std::vector<uint8_t> eos = bytes;
  eos[32 + 4 + 24 + 7] = 2;
  EXPECT_FALSE(decode(eos).ok());
  ConsensusRequest one = r;
  one.prompt_token_ids = {5};
  std::vector<uint8_t> tok = encode(one);
  tok[32 + 4 + 3] = 1;  // token id 2^32 + 5
  EXPECT_FALSE(decode(tok).ok());
  // Every strict prefix is rejected.
  for (size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_FALSE(decode(std::vector<uint8_t>(bytes.begin(), bytes.begin() + n)).ok()) << n;
  }
}

TEST(MerkleTest, StructureByHand) {
  auto leaf = [](std::span<const uint32_t> chunk) {
    Encoder e;
    e.Raw(std::vector<uint8_t>{0x00}).U64List(chunk);
    return crypto::Sha256Of(
        std::string_view(reinterpret_cast<const char*>(e.bytes().data()), e.bytes().size()));
  };
  auto node = [](const Hash256& l, const Hash256& r) {
    std::string s(1, '\x01');
    s.append(l.begin(), l.end());
    s.append(r.begin(), r.end());
    return crypto::Sha256Of(s);
  };
  std::vector<uint32_t> ids(70);
  for (uint32_t i = 0; i < 70; ++i) ids[i] = i * 7;
  std::span<const uint32_t> s(ids);
  const Hash256 l0 = leaf(s.subspan(0, 32)), l1 = leaf(s.subspan(32, 32)), l2 = leaf(s.subspan(64));
  EXPECT_EQ(OutputMerkleRoot(ids), node(node(l0, l1), l2));
  EXPECT_EQ(OutputMerkleRoot(s.first(32)), l0);
  EXPECT_EQ(OutputMerkleRoot({}), crypto::Sha256Of(""));
}

TEST(CommitmentTest, ProofBindsMemberAndOutput) {
  Hash256 rid{};
  ConsensusOutput o{{1, 2, 3}, FinishReason::kStop};
  Address a{}, b{};
  b[0] = 1;
  EXPECT_NE(OutputProof(rid, o, a), OutputProof(rid, o, b));
  ConsensusOutput o2 = o;
  o2.finish_reason = FinishReason::kLength;
  EXPECT_NE(OutputProof(rid, o, a), OutputProof(rid, o2, a));
  const std::vector<Hash256> p = {OutputProof(rid, o, a), OutputProof(rid, o, b)};
  const std::vector<Hash256> swapped = {p[1], p[0]};
  EXPECT_NE(Commitment(p), Commitment(swapped));
}

}  // namespace
}  // namespace atoma::consensus
