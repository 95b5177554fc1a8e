#include "atoma/consensus/encoding.h"

#include <gtest/gtest.h>

#include "vectors.h"

namespace atoma::consensus {
namespace {

using testing::Bytes;
using testing::Fixed;
using testing::Hex;

void EncodeField(const nlohmann::json& field, Encoder& e) {
  const std::string type = field.at("type");
  const auto& v = field.at("value");
  if (type == "u64") {
    e.U64(std::stoull(v.get<std::string>()));
  } else if (type == "u256") {
    e.Uint(Uint256::FromDecimal(v.get<std::string>()).value());
  } else if (type == "hash") {
    e.Hash(Fixed<32>(v));
  } else if (type == "address") {
    e.Addr(Fixed<20>(v));
  } else if (type == "bytes") {
    e.Bytes(std::span<const uint8_t>(Bytes(v)));
  } else if (type == "u64_list") {
    std::vector<uint64_t> values;
    for (const auto& x : v) values.push_back(std::stoull(x.get<std::string>()));
    e.U64List(std::span<const uint64_t>(values));
  } else if (type == "hash_list") {
    std::vector<Hash256> values;
    for (const auto& x : v) values.push_back(Fixed<32>(x));
    e.HashList(values);
  } else if (type == "address_list") {
    std::vector<Address> values;
    for (const auto& x : v) values.push_back(Fixed<20>(x));
    e.AddrList(values);
  } else if (type == "bytes_list") {
    std::vector<std::string> values;
    for (const auto& x : v) {
      const auto b = Bytes(x);
      values.emplace_back(b.begin(), b.end());
    }
    e.BytesList(values);
  } else {
    ADD_FAILURE() << "unknown field type " << type;
  }
}

TEST(EncodingTest, MatchesIndependentVectors) {
  const auto vectors = testing::LoadVectors("encoding.json");
  ASSERT_GE(vectors.size(), 8u);
  for (const auto& v : vectors) {
    Encoder e;
    for (const auto& f : v.at("fields")) EncodeField(f, e);
    EXPECT_EQ(Hex(e.bytes()), v.at("encoded").get<std::string>()) << v.at("name");
    EXPECT_EQ(Hex(TaggedHash(v.at("tag").get<std::string>(), e)), v.at("hash").get<std::string>())
        << v.at("name");
  }
}

TEST(EncodingTest, LayoutByHand) {
  Encoder e;
  e.U64(0x0102030405060708).U32(9).Bytes(std::string_view("ab")).Uint(Uint256(1));
  std::vector<uint8_t> want = {1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 9, 0, 0, 0, 2, 'a', 'b'};
  want.resize(want.size() + 31, 0);
  want.push_back(1);
  EXPECT_EQ(e.bytes(), want);
  // H = SHA-256(tag ‖ 0x00 ‖ payload).
  const std::string raw = std::string("t") + '\0' + std::string(want.begin(), want.end());
  EXPECT_EQ(TaggedHash("t", e), crypto::Sha256Of(raw));
  // Changing the tag changes the hash even with the same payload.
  EXPECT_NE(TaggedHash("t", e), TaggedHash("u", e));
}

TEST(DecoderTest, ReadsWhatEncoderWrites) {
  Hash256 h{};
  h[0] = 7;
  Address a{};
  a[19] = 9;
  Encoder e;
  e.U64(~uint64_t{0}).Uint(Uint256::Max()).Hash(h).Addr(a).Bytes(std::string_view("xyz")).U32(3);
  Decoder d(e.bytes());
  EXPECT_EQ(d.U64("a").value(), ~uint64_t{0});
  EXPECT_EQ(d.Uint("b").value(), Uint256::Max());
  EXPECT_EQ(d.Hash("c").value(), h);
  EXPECT_EQ(d.Addr("d").value(), a);
  EXPECT_EQ(d.Bytes("e", 3).value(), "xyz");
  EXPECT_FALSE(d.ExpectEnd("f").ok());
  EXPECT_EQ(d.Count("g", 3).value(), 3u);
  EXPECT_TRUE(d.ExpectEnd("h").ok());
  EXPECT_FALSE(d.U64("past the end").ok());
}

TEST(DecoderTest, BoundsAndTruncation) {
  Encoder e;
  e.Bytes(std::string_view("hello"));
  {
    Decoder d(e.bytes());
    EXPECT_EQ(d.Bytes("s", 4).status().code(), absl::StatusCode::kInvalidArgument);
  }
  {
    Decoder d(std::span<const uint8_t>(e.bytes()).first(6));
    EXPECT_EQ(d.Bytes("s", 100).status().code(), absl::StatusCode::kInvalidArgument);
  }
  Encoder big;
  big.U32(0xffffffff);
  Decoder d(big.bytes());
  EXPECT_FALSE(d.Count("list", 1000).ok());
  Decoder d2(big.bytes());
  EXPECT_FALSE(d2.Bytes("huge", ~size_t{0}).ok());  // length larger than the input
}

}  // namespace
}  // namespace atoma::consensus
