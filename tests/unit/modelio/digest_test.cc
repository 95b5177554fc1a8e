#include <string>
#include <utility>
#include <vector>

#include "atoma/crypto/sha256.h"
#include "atoma/engine/model.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "test_util.h"

namespace atoma::engine {
namespace {

using ::testing::HasSubstr;
using testing::ScratchDir;
using testing::WriteAll;

// The framing model.h specifies, written out independently of the implementation.
std::string Frame(const std::string& name, const std::string& bytes) {
  std::string out;
  for (int i = 3; i >= 0; --i) out.push_back(static_cast<char>(name.size() >> (8 * i)));
  out += name;
  for (int i = 7; i >= 0; --i) {
    out.push_back(static_cast<char>(static_cast<uint64_t>(bytes.size()) >> (8 * i)));
  }
  out += bytes;
  return out;
}

class DigestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    files_ = {
        {"config.json", R"({"architectures":["LlamaForCausalLM"]})"},
        {"tokenizer.json", R"({"model":{"type":"BPE"}})"},
        {"tokenizer_config.json", R"({"eos_token":"<|im_end|>"})"},
        {"model.safetensors.index.json",
         R"({"weight_map":{"a":"model-00001-of-00002.safetensors"}})"},
        {"model-00001-of-00002.safetensors", Pattern(64, 1)},
        {"model-00002-of-00002.safetensors", Pattern(48, 2)},
    };
    for (const auto& [name, bytes] : files_) WriteAll(dir_.path() / name, bytes);
    // A file the digest must ignore.
    WriteAll(dir_.path() / "README.md", "# model");
  }

  static std::string Pattern(size_t n, int salt) {
    std::string s(n, '\0');
    for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + salt * 7) >> 3);
    return s;
  }

  crypto::Hash256 Expected() const {
    std::string all;
    for (const auto& [name, bytes] : files_) all += Frame(name, bytes);
    return crypto::Sha256Of(all);
  }

  crypto::Hash256 Digest() const {
    auto d = ComputeModelDigest(dir_.path());
    EXPECT_TRUE(d.ok()) << d.status();
    return d.ok() ? *d : crypto::Hash256{};
  }

  ScratchDir dir_;
  std::vector<std::pair<std::string, std::string>> files_;  // in digest order
};

TEST_F(DigestTest, MatchesSpecifiedFraming) { EXPECT_EQ(Digest(), Expected()); }

TEST_F(DigestTest, StreamsLargeFiles) {
  // Crosses the 1 MiB read buffer several times, with a partial last block.
  files_[4].second = Pattern(3 * (1 << 20) + 17, 3);
  WriteAll(dir_.path() / files_[4].first, files_[4].second);
  EXPECT_EQ(Digest(), Expected());
}

TEST_F(DigestTest, ReportsProgressOverEveryFile) {
  files_[4].second = Pattern(3 * (1 << 20) + 17, 3);
  WriteAll(dir_.path() / files_[4].first, files_[4].second);
  uint64_t expected_total = 0;
  for (const auto& [name, bytes] : files_) expected_total += bytes.size();
  std::vector<std::pair<uint64_t, uint64_t>> calls;
  auto d = ComputeModelDigest(
      dir_.path(), [&](uint64_t hashed, uint64_t total) { calls.emplace_back(hashed, total); });
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(*d, Expected());    // progress changes nothing about the digest
  ASSERT_GE(calls.size(), 5u);  // the 3 MiB shard alone takes 4 reads
  EXPECT_EQ(calls.front(), std::make_pair(uint64_t{0}, expected_total));
  EXPECT_EQ(calls.back(), std::make_pair(expected_total, expected_total));
  for (size_t i = 1; i < calls.size(); ++i) {
    EXPECT_LE(calls[i - 1].first, calls[i].first) << "call " << i;
    EXPECT_EQ(calls[i].second, expected_total) << "call " << i;
  }
}

TEST_F(DigestTest, StableAcrossCalls) { EXPECT_EQ(Digest(), Digest()); }

TEST_F(DigestTest, IgnoresOtherFiles) {
  crypto::Hash256 before = Digest();
  WriteAll(dir_.path() / "generation_config.json", "{}");
  WriteAll(dir_.path() / "weights.bin", "not read by the loader");
  EXPECT_EQ(Digest(), before);
}

TEST_F(DigestTest, SensitiveToEveryByteOfEveryFile) {
  const crypto::Hash256 base = Digest();
  for (const auto& [name, bytes] : files_) {
    const auto path = dir_.path() / name;
    for (size_t i = 0; i < bytes.size(); ++i) {
      std::string changed = bytes;
      changed[i] = static_cast<char>(changed[i] ^ 0x01);
      WriteAll(path, changed);
      ASSERT_NE(Digest(), base) << name << " byte " << i;
    }
    WriteAll(path, bytes + "x");  // appended byte
    EXPECT_NE(Digest(), base) << name;
    WriteAll(path, bytes);
  }
  EXPECT_EQ(Digest(), base);
}

TEST_F(DigestTest, SensitiveToNamesAndOptionalFile) {
  const crypto::Hash256 base = Digest();
  std::filesystem::rename(dir_.path() / "model-00002-of-00002.safetensors",
                          dir_.path() / "model-00002-of-00003.safetensors");
  EXPECT_NE(Digest(), base);
  std::filesystem::rename(dir_.path() / "model-00002-of-00003.safetensors",
                          dir_.path() / "model-00002-of-00002.safetensors");
  EXPECT_EQ(Digest(), base);
  // tokenizer_config.json is optional, and covered when present.
  std::filesystem::remove(dir_.path() / "tokenizer_config.json");
  auto without = ComputeModelDigest(dir_.path());
  ASSERT_TRUE(without.ok()) << without.status();
  EXPECT_NE(*without, base);
  files_.erase(files_.begin() + 2);
  EXPECT_EQ(*without, Expected());
  // So is the shard index: it decides which shard each tensor is read from.
  std::filesystem::remove(dir_.path() / "model.safetensors.index.json");
  auto no_index = ComputeModelDigest(dir_.path());
  ASSERT_TRUE(no_index.ok()) << no_index.status();
  EXPECT_NE(*no_index, *without);
  files_.erase(files_.begin() + 2);
  EXPECT_EQ(*no_index, Expected());
}

TEST_F(DigestTest, MissingRequiredFiles) {
  std::filesystem::remove(dir_.path() / "tokenizer.json");
  auto d = ComputeModelDigest(dir_.path());
  EXPECT_EQ(d.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(d.status().message()), HasSubstr("tokenizer.json"));
  WriteAll(dir_.path() / "tokenizer.json", "{}");
  std::filesystem::remove(dir_.path() / "config.json");
  d = ComputeModelDigest(dir_.path());
  EXPECT_THAT(std::string(d.status().message()), HasSubstr("config.json"));
  WriteAll(dir_.path() / "config.json", "{}");
  std::filesystem::remove(dir_.path() / "model-00001-of-00002.safetensors");
  std::filesystem::remove(dir_.path() / "model-00002-of-00002.safetensors");
  d = ComputeModelDigest(dir_.path());
  EXPECT_EQ(d.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(d.status().message()), HasSubstr("safetensors"));
  EXPECT_EQ(ComputeModelDigest(dir_.path() / "absent").status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace atoma::engine
