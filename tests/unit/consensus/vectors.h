// Helpers shared by the consensus tests: loading tests/vectors/*.json and hex conversion.
#pragma once

#include <gtest/gtest.h>

#include <array>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "atoma/crypto/keys.h"
#include "atoma/crypto/sha256.h"

namespace atoma::consensus::testing {

inline nlohmann::json LoadVectors(const std::string& name) {
  const char* root = std::getenv("ATOMA_SOURCE_DIR");
  const std::string path = std::string(root ? root : ".") + "/tests/vectors/" + name;
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << "cannot open " << path << " (is ATOMA_SOURCE_DIR set?)";
  if (!in.good()) return nlohmann::json::array();
  return nlohmann::json::parse(in).at("vectors");
}

inline std::vector<uint8_t> Bytes(const std::string& hex) { return crypto::ParseHex(hex).value(); }

template <size_t N>
std::array<uint8_t, N> Fixed(const std::string& hex) {
  const auto b = Bytes(hex);
  EXPECT_EQ(b.size(), N) << hex;
  std::array<uint8_t, N> out{};
  std::copy_n(b.begin(), std::min(N, b.size()), out.begin());
  return out;
}

inline std::string Hex(std::span<const uint8_t> bytes) { return crypto::ToHex(bytes); }

}  // namespace atoma::consensus::testing
