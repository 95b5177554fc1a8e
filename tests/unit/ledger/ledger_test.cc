#include "atoma/ledger/ledger.h"

#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "atoma/crypto/sha256.h"
#include "backends.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/ledger_fixture.h"
#include "testing/temp_dir.h"

namespace atoma::ledger {

// Readable failure messages for snapshots.
void PrintTo(const Candidate& c, std::ostream* os) {
  *os << crypto::AddressToString(c.address) << ":" << c.stake.ToDecimal();
}

namespace {

using test::Actor;
using test::Backend;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

Address Addr(uint8_t last, uint8_t first = 0) {
  Address a{};
  a[0] = first;
  a[19] = last;
  return a;
}

Hash256 Digest(std::string_view name) { return crypto::Sha256Of(name); }

EchelonRef Ech(const std::string& model, const std::string& fingerprint) {
  return {Digest(model), Digest(absl::StrCat(model, "/", fingerprint))};
}

// A fresh directory per test, removed afterwards. Ledgers come from the backend's opener
// (backends.h); on the EVM backend the randomness and clock seams of FakeOptions do not apply.
class LedgerTestBase : public ::testing::Test {
 protected:
  virtual Backend backend() const { return Backend::kEmbedded; }
  void SetUp() override {
    dir_ = test::FreshTestDir("atoma_ledger_");
    path_ = dir_ / "ledger.db";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Deterministic randomness: the i-th call yields 32 bytes of value `counter_++`.
  EmbeddedLedgerOptions FakeOptions() {
    EmbeddedLedgerOptions options;
    options.random = [this](std::span<uint8_t> out) {
      std::fill(out.begin(), out.end(), static_cast<uint8_t>(counter_++));
      return absl::OkStatus();
    };
    options.unix_seconds = [] { return int64_t{1'700'000'000}; };
    return options;
  }

  // A new ledger of this test's backend (at path_ by default, for the embedded one).
  std::unique_ptr<LedgerClient> Open(const EmbeddedLedgerOptions& options) {
    return Open(options, path_);
  }
  std::unique_ptr<LedgerClient> Open(const EmbeddedLedgerOptions& options,
                                     const std::filesystem::path& path) {
    auto ledger = test::OpenerFor(backend())(path, options, {});
    EXPECT_TRUE(ledger.ok()) << ledger.status();
    return ledger.ok() ? std::move(ledger->client) : nullptr;
  }

  std::filesystem::path dir_;
  std::filesystem::path path_;
  std::atomic<int> counter_{0};
};

// Run on both backends.
class LedgerTest : public LedgerTestBase, public ::testing::WithParamInterface<Backend> {
 protected:
  Backend backend() const override { return GetParam(); }
};
INSTANTIATE_TEST_SUITE_P(Backends, LedgerTest, ::testing::ValuesIn(test::AllBackends()),
                         test::BackendParamName);

// Embedded only: each test says why.
class LedgerEmbeddedTest : public LedgerTestBase {};

TEST(EndpointTest, AcceptsHostPortForms) {
  EXPECT_TRUE(ValidateEndpoint("localhost:50051").ok());
  EXPECT_TRUE(ValidateEndpoint("10.0.0.7:1").ok());
  EXPECT_TRUE(ValidateEndpoint("node-1.example.org:65535").ok());
  EXPECT_TRUE(ValidateEndpoint("[::1]:443").ok());
  EXPECT_TRUE(ValidateEndpoint("[2001:db8::7]:50051").ok());
}

TEST(EndpointTest, RejectsMalformed) {
  for (const char* bad : {"", "localhost", "localhost:", ":50051", "host:0", "host:65536",
                          "host:-1", "host:80a", "ho st:80", "-host:80", "host..x:80", "::1:80",
                          "[::1:80", "[zz::1]:80", "a_b:80", "host:80 "}) {
    EXPECT_TRUE(absl::IsInvalidArgument(ValidateEndpoint(bad))) << bad;
  }
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateEndpoint(std::string(250, 'a') + ".b:1")));
}

TEST_P(LedgerTest, RegistersNodeAndRejectsDuplicatesAndBadInput) {
  auto ledger = Open(FakeOptions());
  ASSERT_NE(ledger, nullptr);
  const std::vector<EchelonRef> echelons = {Ech("m1", "fp"), Ech("m2", "fp")};
  ASSERT_TRUE(ledger->RegisterNode(Actor(1), "node1:50051", echelons).ok());

  auto node = ledger->GetNode(Actor(1));
  ASSERT_TRUE(node.ok()) << node.status();
  EXPECT_EQ(node->endpoint, "node1:50051");
  EXPECT_EQ(node->registered_epoch, 0u);
  EXPECT_EQ(node->echelons.size(), 2u);
  for (const EchelonRef& e : echelons) {
    EXPECT_NE(std::find(node->echelons.begin(), node->echelons.end(), e), node->echelons.end());
  }

  EXPECT_TRUE(absl::IsAlreadyExists(ledger->RegisterNode(Actor(1), "other:1", {})));
  EXPECT_TRUE(absl::IsInvalidArgument(ledger->RegisterNode(Actor(2), "no-port", {})));
  // One echelon per model.
  EXPECT_TRUE(absl::IsInvalidArgument(
      ledger->RegisterNode(Actor(2), "n2:1", {Ech("m1", "a"), Ech("m1", "b")})));
  std::vector<EchelonRef> too_many;
  for (size_t i = 0; i <= LedgerClient::kMaxEchelons; ++i) {
    too_many.push_back(Ech(absl::StrCat("m", i), "fp"));
  }
  EXPECT_TRUE(absl::IsInvalidArgument(ledger->RegisterNode(Actor(2), "n2:1", too_many)));
  // The rejected registrations left nothing behind.
  EXPECT_TRUE(absl::IsNotFound(ledger->GetNode(Actor(2)).status()));

  ASSERT_TRUE(ledger->UpdateNode(Actor(1), "node1b:7000", {Ech("m3", "fp")}).ok());
  node = ledger->GetNode(Actor(1));
  ASSERT_TRUE(node.ok());
  EXPECT_EQ(node->endpoint, "node1b:7000");
  EXPECT_THAT(node->echelons, ElementsAre(Ech("m3", "fp")));
  EXPECT_TRUE(absl::IsNotFound(ledger->UpdateNode(Actor(9), "x:1", {})));
}

TEST_P(LedgerTest, StakeRequiresRegistrationAndPositiveAmount) {
  auto ledger = Open(FakeOptions());
  ASSERT_NE(ledger, nullptr);
  const absl::Status unregistered = ledger->Stake(Actor(1), 5);
  EXPECT_TRUE(absl::IsNotFound(unregistered)) << unregistered;
  ASSERT_TRUE(ledger->RegisterNode(Actor(1), "n:1", {}).ok());
  EXPECT_TRUE(absl::IsInvalidArgument(ledger->Stake(Actor(1), 0)));
  EXPECT_TRUE(absl::IsInvalidArgument(ledger->Unstake(Actor(1), 0)));
  const absl::Status too_much = ledger->Unstake(Actor(1), 1);
  EXPECT_TRUE(absl::IsFailedPrecondition(too_much)) << too_much;
  EXPECT_THAT(too_much.message(), HasSubstr("has only 0 bonded"));
}

TEST_P(LedgerTest, UnbondingTimelineAcrossEpochs) {
  EmbeddedLedgerOptions options = FakeOptions();
  options.unbonding_epochs = 2;
  auto ledger = Open(options);
  ASSERT_NE(ledger, nullptr);
  const Address n = Actor(1);
  ASSERT_TRUE(ledger->RegisterNode(n, "n:1", {}).ok());
  ASSERT_TRUE(ledger->Stake(n, 100).ok());
  ASSERT_TRUE(ledger->Stake(n, 50).ok());
  ASSERT_TRUE(ledger->Unstake(n, 30).ok());  // epoch 0: releases at 2

  auto stake = ledger->GetStake(n);
  ASSERT_TRUE(stake.ok());
  EXPECT_EQ(stake->bonded, Amount(120));
  ASSERT_EQ(stake->unbonding.size(), 1u);
  EXPECT_EQ(stake->unbonding[0].amount, Amount(30));
  EXPECT_EQ(stake->unbonding[0].release_epoch, 2u);
  EXPECT_TRUE(stake->withdrawable.IsZero());
  EXPECT_TRUE(absl::IsFailedPrecondition(ledger->WithdrawStake(n, 1)));

  ASSERT_TRUE(ledger->AdvanceEpoch().ok());  // epoch 1
  ASSERT_TRUE(ledger->Unstake(n, 20).ok());  // releases at 3
  EXPECT_TRUE(absl::IsFailedPrecondition(ledger->WithdrawStake(n, 1)));

  ASSERT_TRUE(ledger->AdvanceEpoch().ok());  // epoch 2: the first 30 are released
  stake = ledger->GetStake(n);
  ASSERT_TRUE(stake.ok());
  EXPECT_EQ(stake->bonded, Amount(100));
  EXPECT_EQ(stake->withdrawable, Amount(30));
  ASSERT_EQ(stake->unbonding.size(), 1u);
  EXPECT_EQ(stake->unbonding[0].amount, Amount(20));
  EXPECT_EQ(stake->unbonding[0].release_epoch, 3u);
  const absl::Status over = ledger->WithdrawStake(n, 31);
  EXPECT_TRUE(absl::IsFailedPrecondition(over)) << over;
  EXPECT_THAT(over.message(), HasSubstr("has 30 released"));
  ASSERT_TRUE(ledger->WithdrawStake(n, 10).ok());

  ASSERT_TRUE(ledger->AdvanceEpoch().ok());  // epoch 3: 20 (of 30) + 20 released
  stake = ledger->GetStake(n);
  ASSERT_TRUE(stake.ok());
  EXPECT_EQ(stake->withdrawable, Amount(40));
  EXPECT_TRUE(stake->unbonding.empty());
  ASSERT_TRUE(ledger->WithdrawStake(n, 35).ok());  // spans both entries
  stake = ledger->GetStake(n);
  ASSERT_TRUE(stake.ok());
  EXPECT_EQ(stake->withdrawable, Amount(5));
  EXPECT_EQ(stake->bonded, Amount(100));
}

TEST_P(LedgerTest, SnapshotsAreFrozenForTheEpoch) {
  auto ledger = Open(FakeOptions());
  ASSERT_NE(ledger, nullptr);
  const EchelonRef e = Ech("m", "fp");
  // Address bytes order them b < a < c; registered as c, b, a. The snapshot must come out sorted
  // by address bytes.
  std::vector<Address> sorted = {Actor(1), Actor(2), Actor(3)};
  std::sort(sorted.begin(), sorted.end());
  const Address a = sorted[1], b = sorted[0], c = sorted[2];
  ASSERT_TRUE(ledger->RegisterNode(c, "c:1", {e}).ok());
  ASSERT_TRUE(ledger->RegisterNode(b, "b:1", {e}).ok());
  ASSERT_TRUE(ledger->RegisterNode(a, "a:1", {e, Ech("other", "fp")}).ok());
  ASSERT_TRUE(ledger->Stake(a, 10).ok());
  ASSERT_TRUE(ledger->Stake(b, 20).ok());
  // c stays at zero stake: not a candidate.

  // Epoch 0 began before any stake.
  auto snap0 = ledger->EchelonSnapshot(0, e.echelon_id);
  ASSERT_TRUE(snap0.ok());
  EXPECT_TRUE(snap0->empty());

  ASSERT_TRUE(ledger->AdvanceEpoch().ok());
  const std::vector<Candidate> expected1 = {{b, 20}, {a, 10}};
  EXPECT_EQ(*ledger->EchelonSnapshot(1, e.echelon_id), expected1);

  // Mid-epoch changes reach only the next snapshot.
  ASSERT_TRUE(ledger->Stake(a, 5).ok());
  ASSERT_TRUE(ledger->Unstake(b, 20).ok());
  ASSERT_TRUE(ledger->Stake(c, 7).ok());
  ASSERT_TRUE(ledger->UpdateNode(a, "a:2", {Ech("other", "fp")}).ok());  // a leaves echelon e
  EXPECT_EQ(*ledger->EchelonSnapshot(1, e.echelon_id), expected1);

  ASSERT_TRUE(ledger->AdvanceEpoch().ok());
  EXPECT_EQ(*ledger->EchelonSnapshot(2, e.echelon_id), (std::vector<Candidate>{{c, 7}}));
  EXPECT_EQ(*ledger->EchelonSnapshot(2, Ech("other", "fp").echelon_id),
            (std::vector<Candidate>{{a, 15}}));
  // Old snapshots stay readable (disputes of late requests need them).
  EXPECT_EQ(*ledger->EchelonSnapshot(1, e.echelon_id), expected1);
  EXPECT_TRUE(ledger->EchelonSnapshot(2, Digest("unknown echelon"))->empty());
  EXPECT_TRUE(absl::IsNotFound(ledger->EchelonSnapshot(3, e.echelon_id).status()));
}

Hash256 ExpectedSeed(const Hash256& previous, uint8_t fill) {
  std::string bytes = "atoma/epoch-seed";
  bytes.push_back('\0');
  bytes.append(previous.begin(), previous.end());
  bytes.append(32, static_cast<char>(fill));
  return crypto::Sha256Of(bytes);
}

// Embedded only: the seed's randomness comes through the test seam (the chain's is prevrandao).
TEST_F(LedgerEmbeddedTest, SeedsFormAHashChainOverInjectedRandomness) {
  auto ledger = Open(FakeOptions());  // genesis draws fill 0, then 1, 2, ...
  ASSERT_NE(ledger, nullptr);
  auto e0 = ledger->CurrentEpoch();
  ASSERT_TRUE(e0.ok());
  EXPECT_EQ(e0->number, 0u);
  EXPECT_EQ(e0->seed, ExpectedSeed(Hash256{}, 0));
  EXPECT_EQ(e0->started_unix_s, 1'700'000'000);
  Hash256 previous = e0->seed;
  for (uint8_t i = 1; i <= 3; ++i) {
    auto next = ledger->AdvanceEpoch();
    ASSERT_TRUE(next.ok());
    EXPECT_EQ(next->number, i);
    EXPECT_EQ(next->seed, ExpectedSeed(previous, i));
    EXPECT_EQ(ledger->GetEpoch(i)->seed, next->seed);
    previous = next->seed;
  }
  EXPECT_EQ(ledger->CurrentEpoch()->number, 3u);
  EXPECT_TRUE(absl::IsNotFound(ledger->GetEpoch(4).status()));
}

TEST_P(LedgerTest, RealRandomnessGivesDifferentSeeds) {
  auto first = Open({}, dir_ / "a.db");
  auto second = Open({}, dir_ / "b.db");
  ASSERT_TRUE(first != nullptr && second != nullptr);
  EXPECT_NE(first->CurrentEpoch()->seed, second->CurrentEpoch()->seed);
  auto a1 = first->AdvanceEpoch();
  auto b1 = second->AdvanceEpoch();
  ASSERT_TRUE(a1.ok() && b1.ok());
  EXPECT_NE(a1->seed, b1->seed);
  EXPECT_NE(a1->seed, first->GetEpoch(0)->seed);
}

TEST_P(LedgerTest, AdvanceEpochFromLetsOneTimerWin) {
  auto ledger = Open(FakeOptions());
  ASSERT_NE(ledger, nullptr);
  ASSERT_TRUE(ledger->AdvanceEpochFrom(0).ok());
  const absl::StatusOr<Epoch> late = ledger->AdvanceEpochFrom(0);
  EXPECT_TRUE(absl::IsFailedPrecondition(late.status())) << late.status();
  EXPECT_EQ(ledger->CurrentEpoch()->number, 1u);
}

// Embedded only: fails the randomness test seam.
TEST_F(LedgerEmbeddedTest, RandomnessFailureLeavesEpochUnchanged) {
  EmbeddedLedgerOptions options = FakeOptions();
  bool fail = false;
  RandomSource inner = options.random;
  options.random = [&](std::span<uint8_t> out) {
    return fail ? absl::UnavailableError("no entropy") : inner(out);
  };
  auto ledger = Open(options);
  ASSERT_NE(ledger, nullptr);
  fail = true;
  EXPECT_TRUE(absl::IsUnavailable(ledger->AdvanceEpoch().status()));
  EXPECT_EQ(ledger->CurrentEpoch()->number, 0u);
}

TEST_P(LedgerTest, EscrowDepositAndTwoStepWithdrawal) {
  EmbeddedLedgerOptions options = FakeOptions();
  options.unbonding_epochs = 2;
  auto ledger = Open(options);
  ASSERT_NE(ledger, nullptr);
  const Address client = Actor(4);
  EXPECT_TRUE(ledger->EscrowBalance(client)->IsZero());
  EXPECT_EQ(*ledger->EscrowStatus(client), EscrowInfo{});
  ASSERT_TRUE(ledger->DepositEscrow(client, 1000).ok());
  ASSERT_TRUE(ledger->DepositEscrow(client, 234).ok());
  EXPECT_EQ(*ledger->EscrowBalance(client), Amount(1234));
  EXPECT_TRUE(absl::IsInvalidArgument(ledger->DepositEscrow(client, 0)));

  // Nothing requested: nothing leaves.
  absl::Status refused = ledger->WithdrawEscrow(client, 1);
  EXPECT_TRUE(absl::IsFailedPrecondition(refused)) << refused;
  EXPECT_THAT(refused.message(), HasSubstr("no withdrawal requested"));
  // More than the balance cannot even be requested.
  refused = ledger->RequestEscrowWithdrawal(client, 1235);
  EXPECT_TRUE(absl::IsFailedPrecondition(refused)) << refused;
  EXPECT_THAT(refused.message(), HasSubstr("holds 1234"));
  EXPECT_TRUE(absl::IsInvalidArgument(ledger->RequestEscrowWithdrawal(client, 0)));

  // Requested in epoch 0: unlocks at 0 + 2; the amount stays in the balance until then.
  ASSERT_TRUE(ledger->RequestEscrowWithdrawal(client, 300).ok());
  EscrowInfo escrow = *ledger->EscrowStatus(client);
  EXPECT_EQ(escrow.balance, Amount(1234));
  EXPECT_EQ(escrow.pending, Amount(300));
  EXPECT_EQ(escrow.unlock_epoch, 2u);
  EXPECT_TRUE(escrow.withdrawable.IsZero());
  EXPECT_EQ(EscrowUncommitted(escrow), Amount(934));
  refused = ledger->WithdrawEscrow(client, 300);
  EXPECT_TRUE(absl::IsFailedPrecondition(refused)) << refused;
  EXPECT_THAT(refused.message(), HasSubstr("unlocks at epoch 2 (current epoch 0)"));
  // A second request replaces the first and restarts the clock.
  ASSERT_TRUE(ledger->AdvanceEpoch().ok());
  ASSERT_TRUE(ledger->RequestEscrowWithdrawal(client, 500).ok());
  escrow = *ledger->EscrowStatus(client);
  EXPECT_EQ(escrow.pending, Amount(500));
  EXPECT_EQ(escrow.unlock_epoch, 3u);
  ASSERT_TRUE(ledger->AdvanceEpoch().ok());  // epoch 2: the first request's unlock, not this one's
  refused = ledger->WithdrawEscrow(client, 300);
  EXPECT_TRUE(absl::IsFailedPrecondition(refused)) << refused;
  EXPECT_THAT(refused.message(), HasSubstr("unlocks at epoch 3 (current epoch 2)"));
  EXPECT_EQ(*ledger->EscrowBalance(client), Amount(1234));

  // Unlocked: at most the pending amount, in parts.
  ASSERT_TRUE(ledger->AdvanceEpoch().ok());  // epoch 3
  escrow = *ledger->EscrowStatus(client);
  EXPECT_EQ(escrow.withdrawable, Amount(500));
  refused = ledger->WithdrawEscrow(client, 501);
  EXPECT_TRUE(absl::IsFailedPrecondition(refused)) << refused;
  EXPECT_THAT(refused.message(),
              HasSubstr("has 500 unlocked since epoch 3 (pending 500, balance 1234)"));
  ASSERT_TRUE(ledger->WithdrawEscrow(client, 200).ok());
  escrow = *ledger->EscrowStatus(client);
  EXPECT_EQ(escrow.balance, Amount(1034));
  EXPECT_EQ(escrow.pending, Amount(300));
  EXPECT_EQ(escrow.unlock_epoch, 3u);
  EXPECT_EQ(escrow.withdrawable, Amount(300));
  ASSERT_TRUE(ledger->WithdrawEscrow(client, 300).ok());
  EXPECT_EQ(*ledger->EscrowStatus(client), (EscrowInfo{Amount(734), Amount(), 0, Amount()}));
  // The request is used up: the rest needs a new one.
  EXPECT_TRUE(absl::IsFailedPrecondition(ledger->WithdrawEscrow(client, 1)));
  // Another client's escrow is its own.
  EXPECT_TRUE(absl::IsFailedPrecondition(ledger->WithdrawEscrow(Actor(5), 1)));
  EXPECT_TRUE(absl::IsFailedPrecondition(ledger->RequestEscrowWithdrawal(Actor(5), 1)));
}

// Embedded only: amounts near 2^256 that no account on a chain can hold.
TEST_F(LedgerEmbeddedTest, RejectsUint256Overflow) {
  auto ledger = Open(FakeOptions());
  ASSERT_NE(ledger, nullptr);
  const Address who = Addr(7);
  ASSERT_TRUE(ledger->DepositEscrow(who, Amount::Max()).ok());
  const absl::Status overflow = ledger->DepositEscrow(who, 1);
  EXPECT_TRUE(absl::IsInvalidArgument(overflow)) << overflow;
  EXPECT_THAT(overflow.message(), HasSubstr("overflow"));
  EXPECT_EQ(*ledger->EscrowBalance(who), Amount::Max());

  ASSERT_TRUE(ledger->RegisterNode(who, "n:1", {}).ok());
  ASSERT_TRUE(ledger->Stake(who, Amount::Max()).ok());
  EXPECT_TRUE(absl::IsInvalidArgument(ledger->Stake(who, 1)));
  // Unbonding stake still counts: bonded + unbonding must fit.
  ASSERT_TRUE(ledger->Unstake(who, 10).ok());
  EXPECT_TRUE(absl::IsInvalidArgument(ledger->Stake(who, 1)));
  EXPECT_EQ(ledger->GetStake(who)->bonded, *CheckedSub(Amount::Max(), 10));
}

// Embedded only: credits the reward through the file (SettlementTest.RewardsAreWithdrawable
// withdraws settled rewards on both backends).
TEST_F(LedgerEmbeddedTest, RewardsWithdrawal) {
  auto ledger = Open(FakeOptions());
  ASSERT_NE(ledger, nullptr);
  const Address n = Addr(3);
  EXPECT_TRUE(ledger->RewardBalance(n)->IsZero());
  EXPECT_TRUE(absl::IsFailedPrecondition(ledger->WithdrawRewards(n, 1)));
  ledger.reset();
  {
    // Settlement (next step) is what credits rewards; until it exists, credit through the file.
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    sqlite3_stmt* stmt = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(db, "INSERT INTO rewards(address, balance) VALUES(?, ?)", -1,
                                 &stmt, nullptr),
              SQLITE_OK);
    const auto balance = Amount(500).ToBigEndian();
    sqlite3_bind_blob(stmt, 1, n.data(), 20, SQLITE_TRANSIENT);
    sqlite3_bind_blob(stmt, 2, balance.data(), 32, SQLITE_TRANSIENT);
    ASSERT_EQ(sqlite3_step(stmt), SQLITE_DONE);
    sqlite3_finalize(stmt);
    sqlite3_close(db);
  }
  ledger = Open(FakeOptions());
  ASSERT_NE(ledger, nullptr);
  EXPECT_EQ(*ledger->RewardBalance(n), Amount(500));
  ASSERT_TRUE(ledger->WithdrawRewards(n, 200).ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(ledger->WithdrawRewards(n, 301)));
  EXPECT_EQ(*ledger->RewardBalance(n), Amount(300));
}

// Embedded only: reopens the file with other options.
TEST_F(LedgerEmbeddedTest, PersistsAcrossReopenAndKeepsItsParameters) {
  EmbeddedLedgerOptions options = FakeOptions();
  options.unbonding_epochs = 3;
  options.epoch_length_s = 600;
  Hash256 seed1{};
  {
    auto ledger = Open(options);
    ASSERT_NE(ledger, nullptr);
    ASSERT_TRUE(ledger->RegisterNode(Addr(1), "n:1", {Ech("m", "fp")}).ok());
    ASSERT_TRUE(ledger->Stake(Addr(1), 77).ok());
    ASSERT_TRUE(ledger->Unstake(Addr(1), 7).ok());
    ASSERT_TRUE(ledger->DepositEscrow(Addr(2), 9).ok());
    seed1 = ledger->AdvanceEpoch()->seed;
  }
  EmbeddedLedgerOptions other = FakeOptions();
  other.unbonding_epochs = 1;  // ignored: the file's parameters win
  auto ledger = Open(other);
  ASSERT_NE(ledger, nullptr);
  EXPECT_EQ(ledger->GetParams()->unbonding_epochs, 3u);
  EXPECT_EQ(ledger->GetParams()->epoch_length_s, 600u);
  EXPECT_EQ(ledger->CurrentEpoch()->number, 1u);
  EXPECT_EQ(ledger->CurrentEpoch()->seed, seed1);
  EXPECT_EQ(ledger->GetNode(Addr(1))->endpoint, "n:1");
  auto stake = ledger->GetStake(Addr(1));
  ASSERT_TRUE(stake.ok());
  EXPECT_EQ(stake->bonded, Amount(70));
  ASSERT_EQ(stake->unbonding.size(), 1u);
  EXPECT_EQ(stake->unbonding[0].release_epoch, 3u);
  EXPECT_EQ(*ledger->EscrowBalance(Addr(2)), Amount(9));
  EXPECT_EQ(*ledger->EchelonSnapshot(1, Ech("m", "fp").echelon_id),
            (std::vector<Candidate>{{Addr(1), 70}}));
}

TEST_P(LedgerTest, RejectsZeroUnbondingAndEpochLength) {
  const test::LedgerOpener open = test::OpenerFor(backend());
  EmbeddedLedgerOptions options = FakeOptions();
  options.unbonding_epochs = 0;
  absl::Status status = open(path_, options, {}).status();
  EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
  options.unbonding_epochs = ~uint64_t{0};  // would wrap the release epoch
  status = open(path_, options, {}).status();
  EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
  options.unbonding_epochs = 1;
  options.epoch_length_s = 0;
  status = open(path_, options, {}).status();
  EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
}

// Embedded only: a file of another schema version.
TEST_F(LedgerEmbeddedTest, RejectsForeignSchema) {
  {
    auto ledger = Open(FakeOptions());
    ASSERT_NE(ledger, nullptr);
  }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "UPDATE meta SET value = '99' WHERE key = 'schema_version'", nullptr,
                         nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  const absl::Status status = OpenEmbeddedLedger(path_, FakeOptions()).status();
  EXPECT_TRUE(absl::IsFailedPrecondition(status)) << status;
}

// Embedded only: a schema migration (version 4 had no escrow withdrawals).
TEST_F(LedgerEmbeddedTest, MigratesASchemaVersion4File) {
  {
    auto ledger = Open(FakeOptions());
    ASSERT_NE(ledger, nullptr);
    ASSERT_TRUE(ledger->DepositEscrow(Addr(3), 50).ok());
  }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db,
                         "DROP TABLE escrow_withdrawals; UPDATE meta SET value = '4' WHERE key = "
                         "'schema_version'",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  auto ledger = OpenEmbeddedLedger(path_, FakeOptions()).value();
  EXPECT_EQ(*ledger->EscrowStatus(Addr(3)), (EscrowInfo{Amount(50), Amount(), 0, Amount()}));
  ASSERT_TRUE(ledger->RequestEscrowWithdrawal(Addr(3), 20).ok());
  EXPECT_EQ(ledger->EscrowStatus(Addr(3))->pending, Amount(20));
}

// Embedded only: another SQLite connection holds the file's write lock.
TEST_F(LedgerEmbeddedTest, BusyStoreIsUnavailableAndAppliesNothing) {
  EmbeddedLedgerOptions options = FakeOptions();
  options.busy_timeout_ms = 50;
  auto ledger = Open(options);
  ASSERT_NE(ledger, nullptr);
  ASSERT_TRUE(ledger->DepositEscrow(Addr(1), 5).ok());
  // Another connection holds the write lock.
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &other), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  const absl::Status busy = ledger->DepositEscrow(Addr(1), 5);
  EXPECT_TRUE(absl::IsUnavailable(busy)) << busy;
  EXPECT_TRUE(absl::IsUnavailable(ledger->AdvanceEpoch().status()));
  // Reads still work under WAL while a writer holds the lock.
  EXPECT_EQ(*ledger->EscrowBalance(Addr(1)), Amount(5));
  ASSERT_EQ(sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(other);
  ASSERT_TRUE(ledger->DepositEscrow(Addr(1), 5).ok());
  EXPECT_EQ(*ledger->EscrowBalance(Addr(1)), Amount(10));
  EXPECT_EQ(ledger->CurrentEpoch()->number, 0u);
}

// Embedded only: two processes create one file.
TEST_F(LedgerEmbeddedTest, TwoProcessesCreatingOneFileAgreeOnGenesis) {
  EmbeddedLedgerOptions options;
  options.busy_timeout_ms = 20000;
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto own = OpenEmbeddedLedger(path_, options);
    _exit(own.ok() && (*own)->CurrentEpoch().ok() ? 0 : 1);
  }
  auto ledger = OpenEmbeddedLedger(path_, options);
  ASSERT_TRUE(ledger.ok()) << ledger.status();
  int child_status = 0;
  ASSERT_EQ(waitpid(child, &child_status, 0), child);
  EXPECT_TRUE(WIFEXITED(child_status) && WEXITSTATUS(child_status) == 0);
  // Exactly one genesis: reopening sees the same epoch 0 seed, and there is no epoch 1.
  auto again = OpenEmbeddedLedger(path_, options);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)->CurrentEpoch()->number, 0u);
  EXPECT_EQ((*again)->CurrentEpoch()->seed, (*ledger)->CurrentEpoch()->seed);
}

constexpr int kNodes = 4;
constexpr int kRounds = 50;

// Each worker stakes 1..kRounds on every node, interleaved with the other workers.
absl::Status StakeRounds(LedgerClient& ledger) {
  for (int round = 1; round <= kRounds; ++round) {
    for (int n = 0; n < kNodes; ++n) {
      absl::Status status = ledger.Stake(Addr(static_cast<uint8_t>(n + 1)), round);
      if (!status.ok()) return status;
    }
  }
  return absl::OkStatus();
}

// Embedded only: two connections and a child process on one file.
TEST_F(LedgerEmbeddedTest, TwoConnectionsAndAChildProcessShareOneFile) {
  EmbeddedLedgerOptions options;  // real randomness; the file is shared
  options.busy_timeout_ms = 20000;
  auto first = OpenEmbeddedLedger(path_, options);
  auto second = OpenEmbeddedLedger(path_, options);
  ASSERT_TRUE(first.ok() && second.ok());
  for (int n = 0; n < kNodes; ++n) {
    ASSERT_TRUE((*first)->RegisterNode(Addr(static_cast<uint8_t>(n + 1)), "n:1", {}).ok());
  }
  // The second connection sees the first's registrations.
  ASSERT_TRUE((*second)->GetNode(Addr(1)).ok());

  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // A separate process with its own connection (never touch the parent's after fork).
    auto own = OpenEmbeddedLedger(path_, options);
    _exit(own.ok() && StakeRounds(**own).ok() ? 0 : 1);
  }
  absl::Status from_first, from_second;
  std::thread t1([&] { from_first = StakeRounds(**first); });
  std::thread t2([&] { from_second = StakeRounds(**second); });
  t1.join();
  t2.join();
  int child_status = 0;
  ASSERT_EQ(waitpid(child, &child_status, 0), child);
  EXPECT_TRUE(WIFEXITED(child_status) && WEXITSTATUS(child_status) == 0);
  EXPECT_TRUE(from_first.ok()) << from_first;
  EXPECT_TRUE(from_second.ok()) << from_second;

  // Three writers, each sum(1..kRounds) per node: no update may be lost.
  const Amount expected = 3 * kRounds * (kRounds + 1) / 2;
  for (int n = 0; n < kNodes; ++n) {
    const Address a = Addr(static_cast<uint8_t>(n + 1));
    EXPECT_EQ((*first)->GetStake(a)->bonded, expected) << n;
    EXPECT_EQ((*second)->GetStake(a)->bonded, expected) << n;
  }
}

}  // namespace
}  // namespace atoma::ledger
