// The ABI coder against the Solidity ABI spec's examples (and an ethers v6 encoding of a nested
// dynamic tuple), round trips, strictness, hostile offsets, selectors and revert reasons.
#include "atoma/evm/abi.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "atoma/evm/hex.h"
#include "gtest/gtest.h"

namespace atoma::evm {
namespace {

std::vector<uint8_t> Bytes(std::string_view hex) { return FromHex(hex).value(); }
std::vector<uint8_t> Str(std::string_view s) { return std::vector<uint8_t>(s.begin(), s.end()); }
std::vector<AbiType> Types(std::string_view list) { return ParseTypeList(list).value(); }
std::string Word(uint64_t v) {
  std::string s = QuantityHex(v).substr(2);
  return std::string(64 - s.size(), '0') + s;
}

TEST(AbiType, ParsesCanonicalStrings) {
  for (const char* t : {"uint256", "uint8", "int256", "int64", "address", "bool", "bytes32",
                        "bytes1", "bytes", "string", "uint256[]", "uint32[3]", "bytes[2][]",
                        "(uint256,bytes)", "(address,(bytes32,string[])[])[2]", "((bool))"}) {
    auto parsed = AbiType::Parse(t);
    ASSERT_TRUE(parsed.ok()) << t << ": " << parsed.status();
    EXPECT_EQ(parsed->ToString(), t);
  }
  for (const char* t :
       {"uint",     "int",      "uint7",      "uint264",    "uint08",      "bytes0",
        "bytes33",  "bytes01",  "()",         "uint256[0]", "uint256[01]", "uint256[",
        "(uint256", "uint256 ", " uint256",   "(uint256,)", "(,uint256)",  "address payable",
        "tuple",    "",         "uint256[]x", "function"}) {
    EXPECT_EQ(AbiType::Parse(t).status().code(), absl::StatusCode::kInvalidArgument) << t;
  }
  // Nesting and size caps.
  std::string deep = "uint8";
  for (int i = 0; i < 40; ++i) deep += "[]";
  EXPECT_FALSE(AbiType::Parse(deep).ok());
  EXPECT_FALSE(AbiType::Parse("uint256[100000][100000]").ok());
  EXPECT_TRUE(AbiType::Parse("uint256[100000]").ok());

  EXPECT_TRUE(AbiType::Parse("(uint256,bytes)").value().IsDynamic());
  EXPECT_FALSE(AbiType::Parse("(uint256,bytes32)[3]").value().IsDynamic());
  EXPECT_EQ(AbiType::Parse("(uint256,bytes32)[3]").value().HeadSize(), 192u);
  EXPECT_EQ(AbiType::Parse("string[3]").value().HeadSize(), 32u);

  auto sig = ParseSignature("transfer(address,uint256)");
  ASSERT_TRUE(sig.ok());
  EXPECT_EQ(sig->name, "transfer");
  EXPECT_EQ(sig->inputs.size(), 2u);
  EXPECT_TRUE(ParseSignature("f()").value().inputs.empty());
  EXPECT_FALSE(ParseSignature("(uint256)").ok());
  EXPECT_FALSE(ParseSignature("f(uint256").ok());
  EXPECT_FALSE(ParseSignature("f uint256)").ok());
}

TEST(Abi, SpecExampleBaz) {
  auto call = EncodeCall("baz(uint32,bool)", {AbiValue::Uint(69), AbiValue::Bool(true)});
  ASSERT_TRUE(call.ok()) << call.status();
  EXPECT_EQ(ToHex(*call), "0xcdcd77c0" + Word(69) + Word(1));
}

TEST(Abi, SpecExampleSam) {
  auto call =
      EncodeCall("sam(bytes,bool,uint256[])",
                 {AbiValue::Bytes(Str("dave")), AbiValue::Bool(true),
                  AbiValue::Array({AbiValue::Uint(1), AbiValue::Uint(2), AbiValue::Uint(3)})});
  ASSERT_TRUE(call.ok()) << call.status();
  EXPECT_EQ(ToHex(*call), "0xa5643bf2" + Word(0x60) + Word(1) + Word(0xa0) + Word(4) +
                              "6461766500000000000000000000000000000000000000000000000000000000" +
                              Word(3) + Word(1) + Word(2) + Word(3));
  auto decoded = AbiDecode(Types("bytes,bool,uint256[]"), std::span(*call).subspan(4));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ((*decoded)[0].bytes(), Str("dave"));
  EXPECT_TRUE((*decoded)[1].boolean());
  EXPECT_EQ((*decoded)[2].list().size(), 3u);
  EXPECT_EQ((*decoded)[2][2].AsU64().value(), 3u);
}

TEST(Abi, SpecExampleF) {
  auto call = EncodeCall(
      "f(uint256,uint32[],bytes10,bytes)",
      {AbiValue::Uint(0x123), AbiValue::Array({AbiValue::Uint(0x456), AbiValue::Uint(0x789)}),
       AbiValue::Bytes(Str("1234567890")), AbiValue::Bytes(Str("Hello, world!"))});
  ASSERT_TRUE(call.ok()) << call.status();
  EXPECT_EQ(ToHex(*call), "0x8be65246" + Word(0x123) + Word(0x80) +
                              "3132333435363738393000000000000000000000000000000000000000000000" +
                              Word(0xe0) + Word(2) + Word(0x456) + Word(0x789) + Word(0xd) +
                              "48656c6c6f2c20776f726c642100000000000000000000000000000000000000");
  auto decoded =
      AbiDecode(Types("uint256,uint32[],bytes10,bytes"), std::span(*call).subspan(4)).value();
  EXPECT_EQ(decoded[2].bytes(), Str("1234567890"));
  EXPECT_EQ(decoded[3].bytes(), Str("Hello, world!"));
}

TEST(Abi, SpecExampleG) {
  auto call = EncodeCall("g(uint256[][],string[])",
                         {AbiValue::Array({AbiValue::Array({AbiValue::Uint(1), AbiValue::Uint(2)}),
                                           AbiValue::Array({AbiValue::Uint(3)})}),
                          AbiValue::Array({AbiValue::String("one"), AbiValue::String("two"),
                                           AbiValue::String("three")})});
  ASSERT_TRUE(call.ok()) << call.status();
  EXPECT_EQ(ToHex(*call),
            "0x2289b18c" + Word(0x40) + Word(0x140) + Word(2) + Word(0x40) + Word(0xa0) + Word(2) +
                Word(1) + Word(2) + Word(1) + Word(3) + Word(3) + Word(0x60) + Word(0xa0) +
                Word(0xe0) + Word(3) +
                "6f6e650000000000000000000000000000000000000000000000000000000000" + Word(3) +
                "74776f0000000000000000000000000000000000000000000000000000000000" + Word(5) +
                "7468726565000000000000000000000000000000000000000000000000000000");
}

// A nested dynamic value: fixed array of tuples holding arrays of dynamic tuples; the expected
// bytes come from ethers v6 AbiCoder.defaultAbiCoder().encode(...) on the same values.
TEST(Abi, NestedDynamicMatchesEthers) {
  const auto types = Types("(uint8,(bytes,string[])[],address)[2],int64,bytes32");
  crypto::Address aa{}, bb{};
  aa[19] = 0xaa;
  bb[19] = 0xbb;
  crypto::Hash256 word;
  word.fill(0x11);
  const std::vector<AbiValue> values = {
      AbiValue::Array(
          {AbiValue::Tuple(
               {AbiValue::Uint(7),
                AbiValue::Array(
                    {AbiValue::Tuple(
                         {AbiValue::Bytes(Bytes("01")), AbiValue::Array({AbiValue::String("a")})}),
                     AbiValue::Tuple({AbiValue::Bytes(Bytes("")), AbiValue::Array({})})}),
                AbiValue::Address(aa)}),
           AbiValue::Tuple({AbiValue::Uint(255), AbiValue::Array({}), AbiValue::Address(bb)})}),
      AbiValue::Int(-5), AbiValue::Bytes32(word)};
  auto encoded = AbiEncode(types, values);
  ASSERT_TRUE(encoded.ok()) << encoded.status();
  const std::string ethers =
      "0x"
      "0000000000000000000000000000000000000000000000000000000000000060"
      "fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffb"
      "1111111111111111111111111111111111111111111111111111111111111111"
      "0000000000000000000000000000000000000000000000000000000000000040"
      "0000000000000000000000000000000000000000000000000000000000000280"
      "0000000000000000000000000000000000000000000000000000000000000007"
      "0000000000000000000000000000000000000000000000000000000000000060"
      "00000000000000000000000000000000000000000000000000000000000000aa"
      "0000000000000000000000000000000000000000000000000000000000000002"
      "0000000000000000000000000000000000000000000000000000000000000040"
      "0000000000000000000000000000000000000000000000000000000000000140"
      "0000000000000000000000000000000000000000000000000000000000000040"
      "0000000000000000000000000000000000000000000000000000000000000080"
      "0000000000000000000000000000000000000000000000000000000000000001"
      "0100000000000000000000000000000000000000000000000000000000000000"
      "0000000000000000000000000000000000000000000000000000000000000001"
      "0000000000000000000000000000000000000000000000000000000000000020"
      "0000000000000000000000000000000000000000000000000000000000000001"
      "6100000000000000000000000000000000000000000000000000000000000000"
      "0000000000000000000000000000000000000000000000000000000000000040"
      "0000000000000000000000000000000000000000000000000000000000000060"
      "0000000000000000000000000000000000000000000000000000000000000000"
      "0000000000000000000000000000000000000000000000000000000000000000"
      "00000000000000000000000000000000000000000000000000000000000000ff"
      "0000000000000000000000000000000000000000000000000000000000000060"
      "00000000000000000000000000000000000000000000000000000000000000bb"
      "0000000000000000000000000000000000000000000000000000000000000000";
  EXPECT_EQ(ToHex(*encoded), ethers);
  auto decoded = AbiDecode(types, *encoded);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(*decoded, values);
  EXPECT_EQ((*decoded)[1].AsI64().value(), -5);
  EXPECT_EQ((*decoded)[0][0][1][0][1][0].string(), "a");
  EXPECT_EQ((*decoded)[2].AsBytes32().value(), word);
}

TEST(Abi, RoundTripsManyShapes) {
  const std::vector<std::pair<std::string, std::vector<AbiValue>>> cases = {
      {"", {}},
      {"string", {AbiValue::String("")}},
      {"bytes", {AbiValue::Bytes(std::vector<uint8_t>(33, 0xee))}},
      {"int8,int256,uint8",
       {AbiValue::Int(-128), AbiValue::Int(std::numeric_limits<int64_t>::min()),
        AbiValue::Uint(255)}},
      {"(bytes,(string,uint256[])[])",
       {AbiValue::Tuple({AbiValue::Bytes(Str("x")),
                         AbiValue::Array({AbiValue::Tuple(
                             {AbiValue::String("s"), AbiValue::Array({AbiValue::Uint(9)})})})})}},
      {"string[2][]",
       {AbiValue::Array({AbiValue::Array({AbiValue::String("a"), AbiValue::String("bc")}),
                         AbiValue::Array({AbiValue::String(""), AbiValue::String("d")})})}},
      {"bool[3],address",
       {AbiValue::Array({AbiValue::Bool(true), AbiValue::Bool(false), AbiValue::Bool(true)}),
        AbiValue::Address(crypto::Address{})}},
  };
  for (const auto& [types_text, values] : cases) {
    const auto types = Types(types_text);
    auto encoded = AbiEncode(types, values);
    ASSERT_TRUE(encoded.ok()) << types_text << ": " << encoded.status();
    EXPECT_EQ(encoded->size() % 32, 0u) << types_text;
    auto decoded = AbiDecode(types, *encoded);
    ASSERT_TRUE(decoded.ok()) << types_text << ": " << decoded.status();
    EXPECT_EQ(*decoded, values) << types_text;
    // A truncated encoding fails, or (cut inside the zero padding, which is not checked)
    // decodes to the same values; it never reads past the end.
    for (size_t cut = 0; cut < encoded->size(); ++cut) {
      auto prefix = AbiDecode(types, std::span(*encoded).first(cut));
      if (prefix.ok()) {
        EXPECT_EQ(*prefix, values) << types_text << " cut at " << cut;
      }
    }
  }
}

TEST(Abi, EncodeRejectsValuesThatDoNotFit) {
  auto bad = [](std::string_view types, std::vector<AbiValue> values) {
    return AbiEncode(Types(types), values).status().code();
  };
  const auto kInvalid = absl::StatusCode::kInvalidArgument;
  EXPECT_EQ(bad("uint8", {AbiValue::Uint(256)}), kInvalid);
  EXPECT_EQ(bad("uint8", {AbiValue::Uint(255)}), absl::StatusCode::kOk);
  EXPECT_EQ(bad("int8", {AbiValue::Int(128)}), kInvalid);
  EXPECT_EQ(bad("int8", {AbiValue::Int(-129)}), kInvalid);
  EXPECT_EQ(bad("int8", {AbiValue::Int(-128)}), absl::StatusCode::kOk);
  EXPECT_EQ(bad("bytes4", {AbiValue::Bytes(Str("abc"))}), kInvalid);
  EXPECT_EQ(bad("uint256[2]", {AbiValue::Array({AbiValue::Uint(1)})}), kInvalid);
  EXPECT_EQ(bad("(uint256,bool)", {AbiValue::Tuple({AbiValue::Uint(1)})}), kInvalid);
  EXPECT_EQ(bad("address", {AbiValue::Uint(1)}), kInvalid);
  EXPECT_EQ(bad("string", {AbiValue::Bytes(Str("x"))}), kInvalid);
  EXPECT_EQ(bad("uint256", {}), kInvalid);
  EXPECT_EQ(EncodeCall("f(uint)", {AbiValue::Uint(1)}).status().code(), kInvalid);
}

TEST(Abi, DecodeRejectsDirtyWords) {
  auto code = [](std::string_view types, const std::string& hex) {
    return AbiDecode(Types(types), Bytes(hex)).status().code();
  };
  const auto kInvalid = absl::StatusCode::kInvalidArgument;
  EXPECT_EQ(code("uint8", Word(0x100)), kInvalid);
  EXPECT_EQ(code("uint8", Word(0xff)), absl::StatusCode::kOk);
  EXPECT_EQ(code("bool", Word(2)), kInvalid);
  EXPECT_EQ(code("address", "01" + std::string(62, '0')), kInvalid);
  EXPECT_EQ(code("bytes1", "0101" + std::string(60, '0')), kInvalid);
  EXPECT_EQ(code("int8", Word(0x80)), kInvalid);                                // +128
  EXPECT_EQ(code("int8", std::string(62, 'f') + "80"), absl::StatusCode::kOk);  // -128
  EXPECT_EQ(code("int8", std::string(62, 'f') + "7f"), kInvalid);               // -129
  EXPECT_EQ(code("uint256", std::string(62, '0')), kInvalid);                   // 31 bytes
}

TEST(Abi, DecodeRejectsHostileOffsets) {
  auto code = [](std::string_view types, const std::string& hex) {
    return AbiDecode(Types(types), Bytes(hex)).status().code();
  };
  const auto kInvalid = absl::StatusCode::kInvalidArgument;
  // Offset beyond the data, offset near 2^256, offset pointing at the last byte.
  EXPECT_EQ(code("bytes", Word(0x40) + Word(0)), kInvalid);
  EXPECT_EQ(code("bytes", std::string(64, 'f')), kInvalid);
  EXPECT_EQ(code("bytes", Word(0x20)), kInvalid);
  // A length past the end; a huge length.
  EXPECT_EQ(code("bytes", Word(0x20) + Word(0x21) + Word(0)), kInvalid);
  EXPECT_EQ(code("bytes", Word(0x20) + std::string(64, 'f')), kInvalid);
  // An array whose claimed length needs more heads than there are bytes: refused before any
  // allocation (2^60 elements).
  EXPECT_EQ(code("uint256[]", Word(0x20) + "1" + std::string(48, '0') + std::string(15, '0')),
            kInvalid);
  EXPECT_EQ(code("uint256[]", Word(0x20) + Word(3) + Word(1) + Word(2)), kInvalid);
  EXPECT_EQ(code("string[]", Word(0x20) + Word(1000000) + Word(0)), kInvalid);
  // Many array elements all pointing at the same big string: decoding it would take
  // n x len bytes from n x 32 + len bytes of input. Refused.
  std::string shared = Word(0x20) + Word(64);
  for (int i = 0; i < 64; ++i) shared += Word(64 * 32);
  shared += Word(2048) + std::string(4096, 'a');
  EXPECT_EQ(code("bytes[]", shared), kInvalid);
  // The same shape with distinct strings decodes.
  std::string distinct = Word(0x20) + Word(2) + Word(0x40) + Word(0x80) + Word(1) + "61" +
                         std::string(62, '0') + Word(1) + "62" + std::string(62, '0');
  auto ok = AbiDecode(Types("string[]"), Bytes(distinct));
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ((*ok)[0][1].string(), "b");
  // Trailing bytes are ignored (as Solidity's abi.decode does).
  EXPECT_EQ(code("uint256", Word(1) + Word(2)), absl::StatusCode::kOk);
}

TEST(Abi, SelectorsAndTopics) {
  EXPECT_EQ(ToHex(Selector("transfer(address,uint256)")), "0xa9059cbb");
  EXPECT_EQ(ToHex(Selector("Error(string)")), "0x08c379a0");
  EXPECT_EQ(ToHex(Selector("Panic(uint256)")), "0x4e487b71");
  EXPECT_EQ(ToHex(EventTopic("Transfer(address,address,uint256)")),
            "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef");
}

TEST(Abi, RevertReasons) {
  auto error = EncodeCall("Error(string)", {AbiValue::String("boom")}).value();
  EXPECT_EQ(ToHex(error), "0x08c379a0" + Word(0x20) + Word(4) + "626f6f6d" + std::string(56, '0'));
  EXPECT_EQ(DecodeRevertReason(error), "boom");
  EXPECT_EQ(RevertErrorMessage(error).value(), "boom");
  EXPECT_EQ(DecodeRevertReason(EncodeCall("Panic(uint256)", {AbiValue::Uint(0x11)}).value()),
            "panic 0x11 (arithmetic overflow)");
  EXPECT_EQ(DecodeRevertReason(EncodeCall("Panic(uint256)", {AbiValue::Uint(0x32)}).value()),
            "panic 0x32 (array index out of bounds)");
  EXPECT_EQ(DecodeRevertReason(EncodeCall("Panic(uint256)", {AbiValue::Uint(0x99)}).value()),
            "panic 0x99 (unknown panic code)");
  EXPECT_EQ(DecodeRevertReason({}), "no reason");
  EXPECT_EQ(DecodeRevertReason(Bytes("0102")), "malformed revert data 0x0102");
  EXPECT_EQ(
      DecodeRevertReason(EncodeCall("Custom(uint256)", {AbiValue::Uint(7)}).value()),
      absl::StrCat("custom error ", ToHex(Selector("Custom(uint256)")), " (32 bytes of data)"));
  EXPECT_EQ(DecodeRevertReason(Bytes("deadbeef")), "custom error 0xdeadbeef");
  EXPECT_EQ(DecodeRevertReason(Bytes("08c379a0" + Word(0x20))),
            "malformed Error(string) revert data (36 bytes)");
  EXPECT_FALSE(RevertErrorMessage(Bytes("deadbeef")).has_value());
  // Control characters from a hostile contract do not reach logs raw; long reasons are cut.
  auto nasty =
      EncodeCall("Error(string)", {AbiValue::String("a\nb" + std::string(3000, 'x'))}).value();
  const std::string reason = DecodeRevertReason(nasty);
  EXPECT_EQ(reason.substr(0, 3), "a?b");
  EXPECT_LT(reason.size(), 1100u);
}

}  // namespace
}  // namespace atoma::evm
