#include "atoma/crypto/keccak.h"

#include <gtest/gtest.h>

#include <string>

namespace atoma::crypto {
namespace {

// Published vectors (Ethereum's Keccak-256, not NIST SHA3-256).
TEST(Keccak256, PublishedVectors) {
  EXPECT_EQ(ToHex(Keccak256Of(std::string_view(""))),
            "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470");
  EXPECT_EQ(ToHex(Keccak256Of(std::string_view("abc"))),
            "4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45");
  EXPECT_EQ(ToHex(Keccak256Of(std::string_view("The quick brown fox jumps over the lazy dog"))),
            "4d741b6f1eb29cb2a9b9911c82f56fa8d73b04959d3d9d222895df6c0b28aa15");
}

// Lengths around the 136-byte rate, where padding spills into a second block. Expected values
// come from an independent Python implementation written from the specification's (x, y) form.
TEST(Keccak256, BlockBoundaries) {
  const std::pair<int, const char*> cases[] = {
      {135, "34367dc248bbd832f4e3e69dfaac2f92638bd0bbd18f2912ba4ef454919cf446"},
      {136, "a6c4d403279fe3e0af03729caada8374b5ca54d8065329a3ebcaeb4b60aa386e"},
      {137, "d869f639c7046b4929fc92a4d988a8b22c55fbadb802c0c66ebcd484f1915f39"},
      {272, "cf7fcd4f705ee749930d19ca84561a9bf62516bd90a471545fa2f49fdc7e63c8"},
      {300, "5b7e0e47a96f32a88b4f14ca177982790807c40e1a105742ba0fc1babe1ef826"},
  };
  for (const auto& [n, hex] : cases) {
    EXPECT_EQ(ToHex(Keccak256Of(std::string(n, 'a'))), hex) << n;
  }
}

TEST(Keccak256, IncrementalEqualsOneShotForEverySplit) {
  std::string data(400, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 131 + 7);
  const Hash256 expected = Keccak256Of(data);
  for (size_t split = 0; split <= data.size(); split += 17) {
    Keccak256 h;
    h.Update(std::string_view(data).substr(0, split));
    h.Update(std::string_view(data).substr(split));
    EXPECT_EQ(h.Final(), expected) << split;
  }
  // Byte at a time.
  Keccak256 h;
  for (char c : data) h.Update(std::string_view(&c, 1));
  EXPECT_EQ(h.Final(), expected);
}

}  // namespace
}  // namespace atoma::crypto
