#include "atoma/consensus/committee.h"

#include <gtest/gtest.h>

#include <map>

#include "vectors.h"

namespace atoma::consensus {
namespace {

using testing::Fixed;
using testing::Hex;

std::vector<std::string> HexList(const std::vector<Address>& addresses) {
  std::vector<std::string> out;
  for (const auto& a : addresses) out.push_back(Hex(a));
  return out;
}

TEST(CommitteeTest, MatchesIndependentVectors) {
  const auto vectors = testing::LoadVectors("committee.json");
  ASSERT_GE(vectors.size(), 20u);
  int errors = 0;
  for (const auto& v : vectors) {
    SCOPED_TRACE(v.at("name").get<std::string>());
    std::vector<Candidate> candidates;
    for (const auto& c : v.at("candidates")) {
      candidates.push_back({Fixed<20>(c.at("address")),
                            Uint256::FromDecimal(c.at("stake").get<std::string>()).value()});
    }
    auto draws = SelectCommittee(Fixed<32>(v.at("epoch_seed")), Fixed<32>(v.at("request_id")),
                                 candidates, v.at("n"), v.at("backups"), v.at("referees"));
    if (v.contains("error")) {
      ++errors;
      ASSERT_FALSE(draws.ok());
      EXPECT_EQ(absl::StatusCodeToString(draws.status().code()), v.at("error").get<std::string>());
      continue;
    }
    ASSERT_TRUE(draws.ok()) << draws.status();
    EXPECT_EQ(HexList(draws->committee), v.at("committee").get<std::vector<std::string>>());
    EXPECT_EQ(HexList(draws->backups), v.at("backup_draws").get<std::vector<std::string>>());
    EXPECT_EQ(HexList(draws->referees), v.at("referee_draws").get<std::vector<std::string>>());
  }
  EXPECT_GE(errors, 4);
}

Address Addr(uint8_t b) {
  Address a{};
  a.fill(b);
  return a;
}

TEST(CommitteeTest, DrawsAreDistinctAndIndependentOfInputOrder) {
  std::vector<Candidate> candidates;
  for (int i = 1; i <= 9; ++i) candidates.push_back({Addr(static_cast<uint8_t>(i)), Uint256(i)});
  Hash256 seed{}, rid{};
  seed[0] = 1;
  rid[5] = 2;
  auto a = SelectCommittee(seed, rid, candidates, 3, 3, 3).value();
  std::reverse(candidates.begin(), candidates.end());
  auto b = SelectCommittee(seed, rid, candidates, 3, 3, 3).value();
  EXPECT_EQ(a.committee, b.committee);
  EXPECT_EQ(a.backups, b.backups);
  EXPECT_EQ(a.referees, b.referees);
  std::vector<Address> all = a.committee;
  all.insert(all.end(), a.backups.begin(), a.backups.end());
  all.insert(all.end(), a.referees.begin(), a.referees.end());
  std::sort(all.begin(), all.end());
  EXPECT_EQ(std::unique(all.begin(), all.end()), all.end());
  EXPECT_EQ(all.size(), 9u);
}

// The first draw picks candidate i with probability stake_i / total: check the frequencies over
// many request ids with a loose bound (about 6 standard deviations).
TEST(CommitteeTest, FirstDrawFollowsStake) {
  const std::vector<Candidate> candidates = {
      {Addr(1), Uint256(1)}, {Addr(2), Uint256(3)}, {Addr(3), Uint256(6)}};
  std::map<Address, int> counts;
  Hash256 seed{};
  const int trials = 4000;
  for (int t = 0; t < trials; ++t) {
    Hash256 rid{};
    rid[0] = static_cast<uint8_t>(t);
    rid[1] = static_cast<uint8_t>(t >> 8);
    ++counts[SelectCommittee(seed, rid, candidates, 1, 0, 0).value().committee[0]];
  }
  const double expect[] = {0.1, 0.3, 0.6};
  for (int i = 0; i < 3; ++i) {
    const double p = expect[i];
    const double sd = std::sqrt(p * (1 - p) / trials);
    EXPECT_NEAR(counts[Addr(static_cast<uint8_t>(i + 1))] / double(trials), p, 6 * sd);
  }
}

TEST(CommitteeTest, Errors) {
  Hash256 seed{}, rid{};
  const std::vector<Candidate> two = {{Addr(1), Uint256(1)}, {Addr(2), Uint256(0)}};
  EXPECT_EQ(SelectCommittee(seed, rid, two, 2, 0, 0).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(SelectCommittee(seed, rid, two, 0, 0, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SelectCommittee(seed, rid, {}, 1, 0, 0).status().code(),
            absl::StatusCode::kFailedPrecondition);
  // Backups and referees are cut short when the echelon runs out, not an error.
  auto d = SelectCommittee(seed, rid, two, 1, 5, 5).value();
  EXPECT_EQ(d.committee.size(), 1u);
  EXPECT_TRUE(d.backups.empty());
  EXPECT_TRUE(d.referees.empty());
}

}  // namespace
}  // namespace atoma::consensus
