// Hex/quantity parsing edge cases and RLP against the Ethereum wiki's examples, plus the strict
// decoder's canonical-form rejections.
#include <string>
#include <vector>

#include "atoma/evm/hex.h"
#include "atoma/evm/rlp.h"
#include "gtest/gtest.h"

namespace atoma::evm {
namespace {

std::vector<uint8_t> Bytes(std::string_view hex) { return FromHex(hex).value(); }
std::vector<uint8_t> Str(std::string_view s) { return std::vector<uint8_t>(s.begin(), s.end()); }

TEST(Hex, ToHexAndFromHex) {
  EXPECT_EQ(ToHex({}), "0x");
  EXPECT_EQ(ToHex(Bytes("00ff10AB")), "0x00ff10ab");
  EXPECT_EQ(FromHex("0x").value(), std::vector<uint8_t>{});
  EXPECT_EQ(FromHex("").value(), std::vector<uint8_t>{});
  EXPECT_EQ(FromHex("0XaBcD").value(), (std::vector<uint8_t>{0xab, 0xcd}));
  EXPECT_EQ(FromHex("abcd").value(), (std::vector<uint8_t>{0xab, 0xcd}));
  EXPECT_EQ(FromHex("0xabc").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(FromHex("0xzz").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(FromHex("0x 1").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(FromHex("x0").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(Hex, FixedWidth) {
  EXPECT_TRUE(ParseHash256("0x" + std::string(64, 'a')).ok());
  EXPECT_EQ(ParseHash256("0x" + std::string(62, 'a')).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto a = ParseAddressHex("0xCD234A471b72ba2F1Ccf0A70FCABA648a5eeCD8d");  // any case, no checksum
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(AddressHex(*a), "0xcd234a471b72ba2f1ccf0a70fcaba648a5eecd8d");
  EXPECT_FALSE(ParseAddressHex("0x1234").ok());
}

TEST(Hex, QuantityHex) {
  EXPECT_EQ(QuantityHex(uint64_t{0}), "0x0");
  EXPECT_EQ(QuantityHex(uint64_t{1}), "0x1");
  EXPECT_EQ(QuantityHex(uint64_t{0x400}), "0x400");
  EXPECT_EQ(QuantityHex(~uint64_t{0}), "0xffffffffffffffff");
  EXPECT_EQ(QuantityHex(Uint256(0)), "0x0");
  EXPECT_EQ(QuantityHex(Uint256::Max()), "0x" + std::string(64, 'f'));
  EXPECT_EQ(QuantityHex(Uint256::FromLimbs(1, 0, 0, 0)), "0x1" + std::string(48, '0'));
}

TEST(Hex, ParseQuantity) {
  EXPECT_EQ(ParseQuantity("0x0").value(), Uint256(0));
  EXPECT_EQ(ParseQuantity("0x00").value(), Uint256(0));  // padded: tolerated
  EXPECT_EQ(ParseQuantity("0x7a69").value(), Uint256(31337));
  EXPECT_EQ(ParseQuantity("0X7A69").value(), Uint256(31337));
  EXPECT_EQ(ParseQuantity("0x" + std::string(64, 'f')).value(), Uint256::Max());
  // Leading zeros do not count against the 256 bits.
  EXPECT_EQ(ParseQuantity("0x000" + std::string(64, 'f')).value(), Uint256::Max());
  EXPECT_EQ(ParseQuantity("0x1" + std::string(64, '0')).status().code(),
            absl::StatusCode::kOutOfRange);
  for (const char* bad : {"", "0x", "7a69", "0x-1", "-0x1", "0x 1", "0x1 ", "0xg", "x1"}) {
    EXPECT_EQ(ParseQuantity(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_EQ(ParseQuantityU64("0xffffffffffffffff").value(), ~uint64_t{0});
  EXPECT_EQ(ParseQuantityU64("0x10000000000000000").status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(ParseQuantityU64("0x").status().code(), absl::StatusCode::kInvalidArgument);
}

// https://ethereum.org/en/developers/docs/data-structures-and-encoding/rlp/ examples.
TEST(Rlp, WikiVectors) {
  EXPECT_EQ(ToHex(RlpEncodeString("dog")), "0x83646f67");
  EXPECT_EQ(ToHex(RlpEncodeList({RlpEncodeString("cat"), RlpEncodeString("dog")})),
            "0xc88363617483646f67");
  EXPECT_EQ(ToHex(RlpEncodeString("")), "0x80");
  EXPECT_EQ(ToHex(RlpEncodeList({})), "0xc0");
  EXPECT_EQ(ToHex(RlpEncodeUint(uint64_t{0})), "0x80");
  EXPECT_EQ(ToHex(RlpEncodeUint(Uint256(0))), "0x80");
  EXPECT_EQ(ToHex(RlpEncodeBytes(std::vector<uint8_t>{0x00})), "0x00");
  EXPECT_EQ(ToHex(RlpEncodeBytes(std::vector<uint8_t>{0x0f})), "0x0f");
  EXPECT_EQ(ToHex(RlpEncodeUint(uint64_t{15})), "0x0f");
  EXPECT_EQ(ToHex(RlpEncodeUint(uint64_t{1024})), "0x820400");
  EXPECT_EQ(ToHex(RlpEncodeUint(Uint256(1024))), "0x820400");
  EXPECT_EQ(ToHex(RlpEncodeUint(uint64_t{0x80})), "0x8180");
  // The set-theoretic representation of three: [ [], [[]], [ [], [[]] ] ].
  const auto empty = RlpEncodeList({});
  const auto one = RlpEncodeList({empty});
  const auto two = RlpEncodeList({empty, one});
  EXPECT_EQ(ToHex(RlpEncodeList({empty, one, two})), "0xc7c0c1c0c3c0c1c0");
  const std::string lorem = "Lorem ipsum dolor sit amet, consectetur adipisicing elit";
  ASSERT_EQ(lorem.size(), 56u);
  EXPECT_EQ(ToHex(RlpEncodeString(lorem)), ToHex(Bytes("b838")) + ToHex(Str(lorem)).substr(2));
  // 55 bytes is still the short form; a list over 55 bytes takes the long form.
  EXPECT_EQ(RlpEncodeString(std::string(55, 'a'))[0], 0x80 + 55);
  EXPECT_EQ(ToHex(RlpEncodeList({RlpEncodeString(lorem)})).substr(0, 10), "0xf83ab838");
  EXPECT_EQ(ToHex(RlpEncodeUint(Uint256::Max())), "0xa0" + std::string(64, 'f'));
}

TEST(Rlp, DecodeRoundTrips) {
  const auto empty = RlpEncodeList({});
  const auto nested = RlpEncodeList(
      {empty, RlpEncodeList({empty}), RlpEncodeList({empty, RlpEncodeList({empty})})});
  auto item = RlpDecode(nested);
  ASSERT_TRUE(item.ok()) << item.status();
  ASSERT_TRUE(item->is_list);
  ASSERT_EQ(item->items.size(), 3u);
  EXPECT_TRUE(item->items[0].items.empty());
  EXPECT_EQ(item->items[2].items[1].items.size(), 1u);

  auto dog = RlpDecode(Bytes("c88363617483646f67"));
  ASSERT_TRUE(dog.ok());
  EXPECT_EQ(dog->items[1].bytes, Str("dog"));

  const std::string lorem = "Lorem ipsum dolor sit amet, consectetur adipisicing elit";
  auto l = RlpDecode(RlpEncodeString(lorem));
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(l->bytes, Str(lorem));
  const std::vector<uint8_t> big(70000, 0xab);  // three length bytes
  auto b = RlpDecode(RlpEncodeBytes(big));
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->bytes, big);

  EXPECT_EQ(RlpDecode(Bytes("820400"))->AsU64().value(), 1024u);
  EXPECT_EQ(RlpDecode(Bytes("80"))->AsU64().value(), 0u);
  EXPECT_EQ(RlpDecode(Bytes("0f"))->AsUint().value(), Uint256(15));
  // Scalars: a leading zero byte is not canonical; more than 8/32 bytes is out of range.
  EXPECT_EQ(RlpDecode(Bytes("820004"))->AsU64().status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RlpDecode(Bytes("00"))->AsU64().status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RlpDecode(Bytes("89010000000000000000"))->AsU64().status().code(),
            absl::StatusCode::kOutOfRange);
  EXPECT_EQ(RlpDecode(Bytes("c0"))->AsU64().status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(Rlp, RejectsNonCanonical) {
  const struct {
    const char* hex;
    const char* why;
  } kBad[] = {
      {"", "empty input"},
      {"8105", "single byte below 0x80 as a string"},
      {"b80100", "long form for a 1-byte payload"},
      {"b90038"
       "00",
       "length with a leading zero byte"},
      {"f800", "long list form for an empty list"},
      {"83646f", "truncated string"},
      {"c883636174", "list payload overruns"},
      {"c38363617483", "item overruns its list"},
      {"83646f6700", "trailing byte"},
      {"c0c0", "two top-level items"},
      {"b8", "missing length byte"},
      {"bf0000000000000000", "absurd length"},
  };
  for (const auto& c : kBad) {
    auto r = RlpDecode(Bytes(c.hex));
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << c.why;
  }
  // Long form for a 55-byte payload (the short form covers it).
  std::vector<uint8_t> long55 = {0xb8, 55};
  long55.resize(2 + 55, 'a');
  EXPECT_EQ(RlpDecode(long55).status().code(), absl::StatusCode::kInvalidArgument);
  long55.erase(long55.begin());
  long55[0] = 0x80 + 55;
  EXPECT_TRUE(RlpDecode(long55).ok());
}

TEST(Rlp, DepthLimit) {
  auto nest = [](int depth) {
    std::vector<uint8_t> v = RlpEncodeList({});
    for (int i = 1; i < depth; ++i) v = RlpEncodeList({v});
    return v;
  };
  EXPECT_TRUE(RlpDecode(nest(kRlpMaxDepth)).ok());
  EXPECT_EQ(RlpDecode(nest(kRlpMaxDepth + 1)).status().code(), absl::StatusCode::kInvalidArgument);
  // 2000 nested lists, each header sized to hold the rest: refused at the limit, without
  // recursing 2000 deep.
  std::vector<uint8_t> deep = RlpEncodeList({});
  for (int i = 0; i < 2000; ++i) deep = RlpEncodeList({deep});
  EXPECT_EQ(RlpDecode(deep).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace atoma::evm
