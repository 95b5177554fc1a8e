#include "atoma/crypto/sha256.h"

#include <gtest/gtest.h>

namespace atoma::crypto {
namespace {

// FIPS 180-2 test vectors.
TEST(Sha256, KnownVectors) {
  EXPECT_EQ(ToHex(Sha256Of("")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(ToHex(Sha256Of("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(ToHex(Sha256Of("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(Sha256, ConstantTimeEqual) {
  EXPECT_TRUE(ConstantTimeEqual("sk-first", "sk-first"));
  EXPECT_TRUE(ConstantTimeEqual("", ""));
  EXPECT_FALSE(ConstantTimeEqual("sk-first", "sk-firs"));
  EXPECT_FALSE(ConstantTimeEqual("sk-first", "sk-first2"));
  EXPECT_FALSE(ConstantTimeEqual("sk-first", "sk-firsT"));
  EXPECT_FALSE(ConstantTimeEqual("", "x"));
}

TEST(Sha256, IncrementalEqualsOneShot) {
  Sha256 h;
  h.Update(std::string_view("ab"));
  h.Update(std::string_view("c"));
  EXPECT_EQ(h.Final(), Sha256Of("abc"));
}

}  // namespace
}  // namespace atoma::crypto
