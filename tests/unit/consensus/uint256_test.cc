#include "atoma/common/uint256.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

namespace atoma {
namespace {

constexpr char kMaxDecimal[] =
    "115792089237316195423570985008687907853269984665640564039457584007913129639935";

Uint256 Dec(std::string_view s) { return Uint256::FromDecimal(s).value(); }

// Test-only 256x256 multiplication (schoolbook over 32-bit halves is not needed: CheckedMul by
// each 64-bit limb, shifted, summed) used to check DivMod by q * d + r == a.
absl::StatusOr<Uint256> MulFull(const Uint256& a, const Uint256& b) {
  Uint256 sum;
  for (int i = 0; i < 4; ++i) {
    if (b.limbs()[i] == 0) continue;
    auto part = CheckedMul(a, b.limbs()[i]);
    if (!part.ok()) return part.status();
    if (part->BitLength() + 64 * i > 256) return absl::OutOfRangeError("overflow");
    auto s = CheckedAdd(sum, *part << (64 * i));
    if (!s.ok()) return s.status();
    sum = *s;
  }
  return sum;
}

TEST(Uint256Test, ZeroAndFromUint64) {
  EXPECT_TRUE(Uint256().IsZero());
  EXPECT_EQ(Uint256().ToDecimal(), "0");
  EXPECT_EQ(Uint256(42).ToDecimal(), "42");
  EXPECT_EQ(Uint256(~uint64_t{0}).ToDecimal(), "18446744073709551615");
  EXPECT_TRUE(Uint256(7).FitsUint64());
  EXPECT_EQ(Uint256(7).Low64(), 7u);
  EXPECT_EQ(Uint256::Max().ToDecimal(), kMaxDecimal);
  EXPECT_EQ(Uint256::Max().BitLength(), 256);
  EXPECT_EQ(Uint256(1).BitLength(), 1);
  EXPECT_EQ(Uint256().BitLength(), 0);
}

TEST(Uint256Test, DecimalRoundTripAndErrors) {
  for (const char* s : {"0", "1", "10", "18446744073709551616", "10000000000000000000",
                        "340282366920938463463374607431768211456", kMaxDecimal}) {
    EXPECT_EQ(Dec(s).ToDecimal(), s);
  }
  EXPECT_EQ(Dec("000123").ToDecimal(), "123");
  EXPECT_EQ(Dec("18446744073709551616"), Uint256::FromLimbs(0, 0, 1, 0));
  EXPECT_EQ(Uint256::FromDecimal("").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Uint256::FromDecimal("-1").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Uint256::FromDecimal(" 1").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Uint256::FromDecimal("1e3").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Uint256::FromDecimal("0x10").status().code(), absl::StatusCode::kInvalidArgument);
  // 2^256 exactly, and a value far above it.
  EXPECT_EQ(Uint256::FromDecimal(
                "115792089237316195423570985008687907853269984665640564039457584007913129639936")
                .status()
                .code(),
            absl::StatusCode::kOutOfRange);
  EXPECT_EQ(Uint256::FromDecimal(std::string(100, '9')).status().code(),
            absl::StatusCode::kOutOfRange);
  // Leading zeros do not count towards the range.
  EXPECT_EQ(Dec(std::string(200, '0') + "5"), Uint256(5));
}

TEST(Uint256Test, HexRoundTripAndErrors) {
  EXPECT_EQ(Uint256().ToHex(), "0x0");
  EXPECT_EQ(Uint256(255).ToHex(), "0xff");
  EXPECT_EQ(Uint256::Max().ToHex(), "0x" + std::string(64, 'f'));
  EXPECT_EQ(Uint256::FromHex("0xFF").value(), Uint256(255));
  EXPECT_EQ(Uint256::FromHex("0x" + std::string(10, '0') + std::string(64, 'f')).value(),
            Uint256::Max());
  EXPECT_EQ(Uint256::FromHex("0x1" + std::string(64, '0')).status().code(),
            absl::StatusCode::kOutOfRange);
  EXPECT_EQ(Uint256::FromHex("0x").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Uint256::FromHex("ff").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Uint256::FromHex("0xfg").status().code(), absl::StatusCode::kInvalidArgument);
  const Uint256 v =
      Dec("48877760154502182940046764750502984211850123594624936383154045601070471397695");
  EXPECT_EQ(Uint256::FromHex(v.ToHex()).value(), v);
}

TEST(Uint256Test, MinimalBigEndian) {
  EXPECT_EQ(Uint256().ToMinimalBigEndian(), std::string(1, '\0'));
  EXPECT_EQ(Uint256(1).ToMinimalBigEndian(), std::string(1, '\x01'));
  EXPECT_EQ(Uint256(256).ToMinimalBigEndian(), std::string("\x01\x00", 2));
  const Uint256 max = Uint256::Max();
  EXPECT_EQ(max.ToMinimalBigEndian(), std::string(32, '\xff'));
  for (const Uint256& v : {Uint256(0), Uint256(77), Uint256(1) << 200, max}) {
    const std::string m = v.ToMinimalBigEndian();
    EXPECT_EQ(Uint256::FromBigEndianBytes(std::vector<uint8_t>(m.begin(), m.end())).value(), v);
  }
}

TEST(Uint256Test, BigEndianRoundTrip) {
  std::array<uint8_t, 32> bytes{};
  for (int i = 0; i < 32; ++i) bytes[i] = static_cast<uint8_t>(i + 1);
  const Uint256 v = Uint256::FromBigEndian(bytes);
  EXPECT_EQ(v, Uint256::FromLimbs(0x0102030405060708, 0x090a0b0c0d0e0f10, 0x1112131415161718,
                                  0x191a1b1c1d1e1f20));
  EXPECT_EQ(v.ToBigEndian(), bytes);
  const std::array<uint8_t, 32> one_be = Uint256(1).ToBigEndian();
  EXPECT_EQ(one_be[31], 1);
  EXPECT_EQ(std::count(one_be.begin(), one_be.end(), 0), 31);
  const std::vector<uint8_t> short_bytes = {0x01, 0x00};
  EXPECT_EQ(Uint256::FromBigEndianBytes(short_bytes).value(), Uint256(256));
  std::vector<uint8_t> long_bytes(40, 0);
  long_bytes.back() = 9;
  EXPECT_EQ(Uint256::FromBigEndianBytes(long_bytes).value(), Uint256(9));
  long_bytes[0] = 1;
  EXPECT_EQ(Uint256::FromBigEndianBytes(long_bytes).status().code(), absl::StatusCode::kOutOfRange);
}

TEST(Uint256Test, Compare) {
  EXPECT_LT(Uint256(1), Uint256(2));
  EXPECT_LT(Uint256(~uint64_t{0}), Uint256::FromLimbs(0, 0, 1, 0));
  EXPECT_GT(Uint256::FromLimbs(1, 0, 0, 0), Uint256::FromLimbs(0, ~0ull, ~0ull, ~0ull));
  EXPECT_EQ(Uint256::FromLimbs(0, 0, 0, 5), Uint256(5));
  EXPECT_NE(Uint256(5), Uint256(6));
  EXPECT_LE(Uint256::Max(), Uint256::Max());
  EXPECT_TRUE(Uint256(0) == 0);
}

TEST(Uint256Test, AddSubCarryAndOverflow) {
  EXPECT_EQ(CheckedAdd(Uint256(~uint64_t{0}), Uint256(1)).value(), Uint256::FromLimbs(0, 0, 1, 0));
  EXPECT_EQ(CheckedAdd(Uint256::FromLimbs(0, ~0ull, ~0ull, ~0ull), Uint256(1)).value(),
            Uint256::FromLimbs(1, 0, 0, 0));
  EXPECT_EQ(CheckedAdd(Uint256::Max(), Uint256(1)).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(CheckedAdd(Uint256::Max(), Uint256::Max()).status().code(),
            absl::StatusCode::kOutOfRange);
  EXPECT_EQ(CheckedAdd(Uint256::Max(), Uint256()).value(), Uint256::Max());
  EXPECT_EQ(CheckedSub(Uint256::FromLimbs(1, 0, 0, 0), Uint256(1)).value(),
            Uint256::FromLimbs(0, ~0ull, ~0ull, ~0ull));
  EXPECT_EQ(CheckedSub(Uint256(5), Uint256(5)).value(), Uint256());
  EXPECT_EQ(CheckedSub(Uint256(5), Uint256(6)).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(CheckedSub(Uint256(), Uint256::Max()).status().code(), absl::StatusCode::kOutOfRange);
  // Borrow equal-limb case: high limbs equal, lower borrow must propagate.
  EXPECT_EQ(
      CheckedSub(Uint256::FromLimbs(0, 0, 5, 0), Uint256::FromLimbs(0, 0, 5, 1)).status().code(),
      absl::StatusCode::kOutOfRange);
  Uint256 out;
  EXPECT_FALSE(AddOverflows(Uint256(2), Uint256(3), &out));
  EXPECT_EQ(out, Uint256(5));
  EXPECT_TRUE(SubUnderflows(Uint256(2), Uint256(3), &out));
}

TEST(Uint256Test, MulSmall) {
  EXPECT_EQ(CheckedMul(Uint256(~uint64_t{0}), 2).value().ToDecimal(), "36893488147419103230");
  EXPECT_EQ(CheckedMul(Uint256::Max(), 1).value(), Uint256::Max());
  EXPECT_EQ(CheckedMul(Uint256::Max(), 0).value(), Uint256());
  EXPECT_EQ(CheckedMul(Uint256::Max(), 2).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(CheckedMul(Uint256::FromLimbs(1, 0, 0, 0), ~uint64_t{0}).value(),
            Uint256::FromLimbs(~uint64_t{0}, 0, 0, 0));
  EXPECT_EQ(CheckedMul(Uint256::FromLimbs(2, 0, 0, 0), ~uint64_t{0}).status().code(),
            absl::StatusCode::kOutOfRange);
}

TEST(Uint256Test, DivModKnownValues) {
  // Computed with Python integers (a // b, a % b).
  struct Case {
    const char *a, *b, *q, *r;
  } cases[] = {
      {"34079137363744217162", "2175216119781798972", "15", "1450895567017232582"},
      {"337637288714535475877926974435368746093220512126001753255748", "522918558215449730",
       "645678535232678067997064654776470039583270", "362420036919238648"},
      {"719957411543862118714464608441635491053569108761563261162118",
       "201159087776493506987416854361376479486", "3579044921618464970769",
       "64542925463241496913483607650143017384"},
      {"48877760154502182940046764750502984211850123594624936383154045601070471397695",
       "4089489452870842556", "11952044556610787881044750897428197936809462120813377734292",
       "950247962137267343"},
      {kMaxDecimal, "340282366920938463463374607431768211457",
       "340282366920938463463374607431768211455", "0"},
      {kMaxDecimal, kMaxDecimal, "1", "0"},
      {"5", kMaxDecimal, "0", "5"},
  };
  for (const Case& c : cases) {
    auto qr = DivMod(Dec(c.a), Dec(c.b));
    ASSERT_TRUE(qr.ok());
    EXPECT_EQ(qr->quotient.ToDecimal(), c.q) << c.a << " / " << c.b;
    EXPECT_EQ(qr->remainder.ToDecimal(), c.r) << c.a << " % " << c.b;
    EXPECT_EQ(Mod(Dec(c.a), Dec(c.b)).value().ToDecimal(), c.r);
  }
  EXPECT_EQ(DivMod(Uint256(5), Uint256()).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Mod(Uint256(5), Uint256()).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(Uint256Test, DivModRandomIdentity) {
  std::mt19937_64 rng(12345);
  auto random_value = [&] {
    const int bits = static_cast<int>(rng() % 257);
    Uint256 v = Uint256::FromLimbs(rng(), rng(), rng(), rng());
    return bits == 0 ? Uint256() : v >> (256 - bits);
  };
  for (int i = 0; i < 3000; ++i) {
    const Uint256 a = random_value();
    Uint256 b = random_value();
    if (b.IsZero()) b = Uint256(1);
    auto qr = DivMod(a, b);
    ASSERT_TRUE(qr.ok());
    EXPECT_LT(qr->remainder, b);
    auto qb = MulFull(qr->quotient, b);
    ASSERT_TRUE(qb.ok());
    EXPECT_EQ(CheckedAdd(*qb, qr->remainder).value(), a);
    // Decimal and byte round trips on the same values.
    EXPECT_EQ(Dec(a.ToDecimal()), a);
    EXPECT_EQ(Uint256::FromBigEndian(a.ToBigEndian()), a);
    EXPECT_EQ(Uint256::FromHex(a.ToHex()).value(), a);
  }
}

TEST(Uint256Test, Shifts) {
  EXPECT_EQ(Uint256(1) << 255, Uint256::FromLimbs(0x8000000000000000ull, 0, 0, 0));
  EXPECT_EQ((Uint256(1) << 255) >> 255, Uint256(1));
  EXPECT_EQ(Uint256(1) << 256, Uint256());
  EXPECT_EQ(Uint256::Max() >> 300, Uint256());
  EXPECT_EQ(Uint256(3) << 63, Uint256::FromLimbs(0, 0, 1, 0x8000000000000000ull));
  EXPECT_EQ(Uint256::FromLimbs(0, 0, 1, 0x8000000000000000ull) >> 63, Uint256(3));
}

}  // namespace
}  // namespace atoma
