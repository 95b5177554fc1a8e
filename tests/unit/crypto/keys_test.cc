#include "atoma/crypto/keys.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "atoma/crypto/keccak.h"

namespace atoma::crypto {
namespace {

PrivateKey KeyFromScalar(uint8_t last_byte) {
  std::array<uint8_t, 32> secret{};
  secret[31] = last_byte;
  return PrivateKey::FromBytes(secret).value();
}

Hash256 DigestFromHex(std::string_view hex) {
  auto bytes = ParseHex(hex).value();
  Hash256 h{};
  std::copy(bytes.begin(), bytes.end(), h.begin());
  return h;
}

// Published: the Ethereum addresses of private keys 1, 2 and 3.
TEST(Keys, AddressesOfSmallKeys) {
  EXPECT_EQ(AddressToString(KeyFromScalar(1).address()),
            "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf");
  EXPECT_EQ(AddressToString(KeyFromScalar(2).address()),
            "0x2B5AD5c4795c026514f8317c7a215E218DcCD6cF");
  EXPECT_EQ(AddressToString(KeyFromScalar(3).address()),
            "0x6813Eb9362372EEF6200f3b1dbC3f819671cBA69");
}

// The test vectors of EIP-55.
TEST(Keys, Eip55Vectors) {
  for (const char* text :
       {"0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
        "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
        "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb"}) {
    auto address = ParseAddress(text);
    ASSERT_TRUE(address.ok()) << address.status();
    EXPECT_EQ(AddressToString(*address), text);
  }
}

TEST(Keys, ParseAddressAcceptsSingleCaseAndRejectsBadChecksum) {
  auto lower = ParseAddress("0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed");
  ASSERT_TRUE(lower.ok());
  EXPECT_EQ(AddressToString(*lower), "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed");
  EXPECT_TRUE(ParseAddress("0x52908400098527886E0F7030069857D2E4169EE7").ok());
  // One letter's case flipped.
  auto bad = ParseAddress("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("checksum"), std::string_view::npos);
  EXPECT_FALSE(ParseAddress("5aaeb6053f3e94c9b9a09f33669435e7ef1beaed").ok());
  EXPECT_FALSE(ParseAddress("0x5aaeb6053f3e94c9b9a09f33669435e7ef1bea").ok());
  EXPECT_FALSE(ParseAddress("0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaeg").ok());
}

TEST(Keys, RejectsOutOfRangeSecrets) {
  std::array<uint8_t, 32> zero{};
  EXPECT_FALSE(PrivateKey::FromBytes(zero).ok());
  // The curve order n itself.
  EXPECT_FALSE(
      PrivateKey::FromHex("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141").ok());
  EXPECT_TRUE(
      PrivateKey::FromHex("0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364140")
          .ok());
  EXPECT_FALSE(PrivateKey::FromHex("01").ok());
  EXPECT_FALSE(PrivateKey::FromBytes(std::vector<uint8_t>(31, 1)).ok());
}

// RFC 6979 vector for key 1 over SHA-256("Satoshi Nakamoto") (widely published r and s; v from an
// independent Python implementation).
TEST(Keys, DeterministicSignatureVector) {
  const Signature sig = KeyFromScalar(1).Sign(Sha256Of("Satoshi Nakamoto"));
  EXPECT_EQ(ToHex(sig),
            "934b1ea10a4b3c1757e2b0c017d0b6143ce3c9a7e6a4a49860d7a6ab210ee3d8"
            "2442ce9d2b916064108014783e923ec36b49743e2ffa1c4496f01a512aafd9e5"
            "1c");
}

// A second vector from the independent Python implementation, over a Keccak digest.
TEST(Keys, SignatureVectorFromReference) {
  auto key =
      PrivateKey::FromHex("35fb7929625f7eb4e4be0b47e47846da16be097d7e9ca5548fb6a9c39b8d5733");
  ASSERT_TRUE(key.ok());
  EXPECT_EQ(ToHex(key->address()), "f049baec94b64370853f9297c9c5ca476d6cd50a");
  const Hash256 digest = Keccak256Of(std::string_view("atoma attestation"));
  EXPECT_EQ(ToHex(digest), "c8551a65432ab571b0cff63a879853713b616d73cc413db1000037762b77f074");
  EXPECT_EQ(ToHex(key->Sign(digest)),
            "3ed2031d1d38472735c745dca643ddf763761dba4f67774398ca13b1af223854"
            "33cf685ec2a6371734bedc394dd23d24b7030d8081d815d8c1a3a7898bc6ea37"
            "1b");
}

TEST(Keys, SignRecoverRoundTrip) {
  for (int i = 0; i < 20; ++i) {
    auto key = PrivateKey::Generate();
    ASSERT_TRUE(key.ok()) << key.status();
    const Hash256 digest = Sha256Of("message " + std::to_string(i));
    const Signature sig = key->Sign(digest);
    EXPECT_TRUE(sig[64] == 27 || sig[64] == 28);
    auto recovered = RecoverAddress(digest, sig);
    ASSERT_TRUE(recovered.ok()) << recovered.status();
    EXPECT_EQ(*recovered, key->address());
    EXPECT_TRUE(VerifySignature(digest, sig, key->address()));
    // Deterministic signing.
    EXPECT_EQ(key->Sign(digest), sig);
  }
}

TEST(Keys, GeneratedKeysDiffer) {
  auto a = PrivateKey::Generate();
  auto b = PrivateKey::Generate();
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(a->address(), b->address());
}

TEST(Keys, TamperedSignatureOrDigestDoesNotVerify) {
  const PrivateKey key = KeyFromScalar(7);
  const Hash256 digest = Sha256Of("attestation");
  const Signature sig = key.Sign(digest);

  // Another digest recovers another address (or fails), never the signer.
  Hash256 other = digest;
  other[0] ^= 1;
  auto from_other = RecoverAddress(other, sig);
  if (from_other.ok()) {
    EXPECT_NE(*from_other, key.address());
  }
  EXPECT_FALSE(VerifySignature(other, sig, key.address()));

  // Flipping any bit of r or s.
  for (int byte : {0, 13, 31, 32, 50, 63}) {
    Signature bad = sig;
    bad[byte] ^= 0x10;
    auto recovered = RecoverAddress(digest, bad);
    if (recovered.ok()) {
      EXPECT_NE(*recovered, key.address()) << byte;
    }
    EXPECT_FALSE(VerifySignature(digest, bad, key.address())) << byte;
  }
  // The other recovery id gives another key.
  Signature flipped_v = sig;
  flipped_v[64] = sig[64] == 27 ? 28 : 27;
  auto recovered = RecoverAddress(digest, flipped_v);
  if (recovered.ok()) {
    EXPECT_NE(*recovered, key.address());
  }
}

TEST(Keys, RejectsMalformedSignatures) {
  const PrivateKey key = KeyFromScalar(9);
  const Hash256 digest = Sha256Of("x");
  const Signature sig = key.Sign(digest);
  for (uint8_t v : {0, 1, 26, 29, 255}) {
    Signature bad = sig;
    bad[64] = v;
    EXPECT_EQ(RecoverAddress(digest, bad).status().code(), absl::StatusCode::kInvalidArgument)
        << int(v);
  }
  Signature zero{};
  zero[64] = 27;
  EXPECT_FALSE(RecoverAddress(digest, zero).ok());
  // r = n (out of range).
  Signature big = sig;
  auto order = ParseHex("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141").value();
  std::copy(order.begin(), order.end(), big.begin());
  EXPECT_FALSE(RecoverAddress(digest, big).ok());
}

// s' = n - s with the other v is the malleable twin that ecrecover would also accept; we refuse
// it so that a signature has one encoding.
TEST(Keys, RejectsHighS) {
  const PrivateKey key = KeyFromScalar(5);
  const Hash256 digest = DigestFromHex(ToHex(Sha256Of("malleable")));
  const Signature sig = key.Sign(digest);
  auto order = ParseHex("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141").value();
  Signature twin = sig;
  int borrow = 0;
  for (int i = 31; i >= 0; --i) {
    int d = int(order[i]) - int(sig[32 + i]) - borrow;
    borrow = d < 0;
    twin[32 + i] = static_cast<uint8_t>(d + (borrow ? 256 : 0));
  }
  twin[64] = sig[64] == 27 ? 28 : 27;
  auto recovered = RecoverAddress(digest, twin);
  ASSERT_FALSE(recovered.ok());
  EXPECT_NE(recovered.status().message().find("upper half"), std::string_view::npos);
}

class KeyFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("atoma_keys_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  static unsigned Mode(const std::filesystem::path& p) {
    struct stat st {};
    EXPECT_EQ(::stat(p.c_str(), &st), 0);
    return st.st_mode & 07777;
  }
  std::filesystem::path dir_;
};

TEST_F(KeyFileTest, RoundTripWithMode0600) {
  const auto path = dir_ / "node.key";
  auto key = PrivateKey::Generate().value();
  ASSERT_TRUE(WriteKeyFile(path, key, /*overwrite=*/false).ok());
  EXPECT_EQ(Mode(path), 0600u);
  auto read = ReadKeyFile(path);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->address(), key.address());
  EXPECT_EQ(read->SecretHex(), key.SecretHex());
  // The documented format: 64 lowercase hex digits and a newline.
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, key.SecretHex() + "\n");
}

TEST_F(KeyFileTest, RefusesToOverwriteWithoutForce) {
  const auto path = dir_ / "node.key";
  auto first = PrivateKey::Generate().value();
  auto second = PrivateKey::Generate().value();
  ASSERT_TRUE(WriteKeyFile(path, first, false).ok());
  EXPECT_EQ(WriteKeyFile(path, second, false).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(ReadKeyFile(path)->address(), first.address());
  ASSERT_TRUE(WriteKeyFile(path, second, true).ok());
  EXPECT_EQ(Mode(path), 0600u);
  EXPECT_EQ(ReadKeyFile(path)->address(), second.address());
  // No temporary file left behind.
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir_),
                          std::filesystem::directory_iterator()),
            1);
}

TEST_F(KeyFileTest, RefusesGroupOrOtherReadableFile) {
  const auto path = dir_ / "node.key";
  ASSERT_TRUE(WriteKeyFile(path, KeyFromScalar(1), false).ok());
  for (unsigned mode : {0640u, 0604u, 0644u, 0610u}) {
    ASSERT_EQ(::chmod(path.c_str(), mode), 0);
    auto read = ReadKeyFile(path);
    ASSERT_FALSE(read.ok()) << mode;
    EXPECT_EQ(read.status().code(), absl::StatusCode::kPermissionDenied);
    EXPECT_NE(read.status().message().find("chmod 600 " + path.string()), std::string_view::npos)
        << read.status();
  }
  ASSERT_EQ(::chmod(path.c_str(), 0400), 0);
  EXPECT_TRUE(ReadKeyFile(path).ok());
}

TEST_F(KeyFileTest, AcceptsPrefixAndWhitespaceRejectsGarbage) {
  const auto write = [&](const std::string& name, const std::string& text) {
    const auto p = dir_ / name;
    std::ofstream(p) << text;
    std::filesystem::permissions(
        p, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
    return p;
  };
  auto ok = ReadKeyFile(
      write("a.key", "  0x0000000000000000000000000000000000000000000000000000000000000001\n\n"));
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(AddressToString(ok->address()), "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf");

  auto empty = ReadKeyFile(write("b.key", ""));
  EXPECT_EQ(empty.status().code(), absl::StatusCode::kInvalidArgument);
  auto junk = ReadKeyFile(write("c.key", std::string(64, 'z')));
  EXPECT_EQ(junk.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(junk.status().message().find("c.key"), std::string_view::npos);
  auto two = ReadKeyFile(
      write("d.key", "0000000000000000000000000000000000000000000000000000000000000001\nextra\n"));
  EXPECT_EQ(two.status().code(), absl::StatusCode::kInvalidArgument);
  auto missing = ReadKeyFile(dir_ / "none.key");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ReadKeyFile(dir_).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(Keys, CloneIsTheSameKey) {
  const PrivateKey key = PrivateKey::FromHex(std::string(63, '0') + "7").value();
  const PrivateKey copy = key.Clone();
  EXPECT_EQ(copy.address(), key.address());
  EXPECT_EQ(copy.SecretHex(), key.SecretHex());
  const Hash256 digest = Sha256Of(std::string_view("clone"));
  EXPECT_EQ(copy.Sign(digest), key.Sign(digest));  // RFC 6979: same key, same signature
  EXPECT_TRUE(VerifySignature(digest, copy.Sign(digest), key.address()));
}

}  // namespace
}  // namespace atoma::crypto
