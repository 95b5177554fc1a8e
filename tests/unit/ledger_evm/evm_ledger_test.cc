// The EVM ledger backend against a real chain (Anvil, tests/unit/testing/anvil.h) and the real
// contract (contracts/build/AtomaLedger.json, embedded at build time): deploy and open, the
// registry/stake/epoch/snapshot round trip, settlement (results, rewards, escrow, IsSettled) and
// the embedded backend's verdicts item by item for locally bad certificates, revert reasons with
// their status codes, PERMISSION_DENIED without a key, equivocation and dispute slashing, and the
// transaction journal: a restart re-sends the same signed bytes (never a second transaction), and
// a chain that goes away mid-call gives UNAVAILABLE, then the journaled transaction is finished by
// the next call, paid once. Anvil missing is a failure naming scripts/setup.sh, not a skip.
#include "atoma/ledger/evm_ledger.h"

#include <atomic>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "atoma/common/status.h"
#include "atoma/consensus/cosign.h"
#include "atoma/evm/abi.h"
#include "atoma/evm/hex.h"
#include "atoma/evm/rpc.h"
#include "atoma/evm/tx.h"
#include "atoma/ledger/ledger.h"
#include "gtest/gtest.h"
#include "ledger_evm/world.h"
#include "testing/anvil.h"
#include "testing/temp_dir.h"
#include "tx_journal.h"

namespace atoma::ledger {
namespace {

using test::AnvilProcess;
using test::World;

// 1000 ether: gas for every test transaction many times over.
const Uint256 kFunds = CheckedMul(Uint256(1'000'000'000'000'000'000), 1000).value();

// A JSON-RPC client in front of the real one that can fail the next eth_sendRawTransaction: it
// forwards it or drops it, runs a hook (e.g. stops the chain), and answers UNAVAILABLE, as if the
// connection died mid-call.
class FaultyRpc final : public evm::RpcClient {
 public:
  explicit FaultyRpc(std::shared_ptr<evm::RpcClient> real) : real_(std::move(real)) {}

  // The next send: forwarded to the chain first when `forward`, then `hook`, then UNAVAILABLE.
  void FailNextSend(bool forward, std::function<void(const nlohmann::json&)> hook = {}) {
    armed_ = true;
    forward_ = forward;
    hook_ = std::move(hook);
  }
  int sends() const { return sends_; }

  absl::StatusOr<nlohmann::json> Call(std::string_view method, nlohmann::json params) override {
    if (method == "eth_sendRawTransaction") {
      ++sends_;
      if (armed_) {
        armed_ = false;
        if (forward_) (void)real_->Call(method, params);
        if (hook_) hook_(params);
        return absl::UnavailableError("injected: connection reset after the send");
      }
    }
    return real_->Call(method, std::move(params));
  }
  const std::string& url() const override { return real_->url(); }

 private:
  std::shared_ptr<evm::RpcClient> real_;
  std::atomic<bool> armed_{false};
  bool forward_ = false;
  std::function<void(const nlohmann::json&)> hook_;
  std::atomic<int> sends_{0};
};

class EvmLedgerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(HasEmbeddedEvmLedgerArtifact())
        << "contracts/build/AtomaLedger.json was missing when this build was configured";
    absl::StatusOr<std::unique_ptr<AnvilProcess>> anvil = AnvilProcess::Start();
    ASSERT_TRUE(anvil.ok()) << anvil.status();
    anvil_ = std::move(*anvil);
    dir_ = test::FreshTestDir("evm_ledger_");
    for (const crypto::PrivateKey& k : world_.Keys()) {
      ASSERT_TRUE(anvil_->SetBalance(k.address(), kFunds).ok());
    }
    ASSERT_TRUE(anvil_->SetBalance(test::StrangerKey().address(), kFunds).ok());
    absl::StatusOr<Address> contract =
        DeployEvmLedger(anvil_->url(), 31337, deployer_, EvmDeployParams{}, DeployOptions());
    ASSERT_TRUE(contract.ok()) << contract.status();
    contract_ = *contract;
    auto eth = evm::RpcClient::MakeHttp({.url = anvil_->url(), .max_attempts = 1});
    ASSERT_TRUE(eth.ok());
    eth_ = std::make_unique<evm::EthClient>(std::shared_ptr<evm::RpcClient>(std::move(*eth)));
    absl::StatusOr<std::unique_ptr<LedgerClient>> ledger = OpenEvmLedger(Options());
    ASSERT_TRUE(ledger.ok()) << ledger.status();
    ledger_ = std::move(*ledger);
  }

  static EvmDeployOptions DeployOptions() {
    EvmDeployOptions o;
    o.poll_interval = absl::Milliseconds(10);
    return o;
  }

  // The world's keys (nodes and client), an in-memory journal unless `journal` is given.
  EvmLedgerOptions Options(const std::filesystem::path& journal = {}) const {
    EvmLedgerOptions o;
    o.rpc_url = anvil_->url();
    o.chain_id = 31337;
    o.contract = contract_;
    o.signers = world_.Keys();
    o.journal_path = journal;
    o.receipt_timeout = absl::Seconds(20);
    o.poll_interval = absl::Milliseconds(10);
    o.rpc.max_attempts = 2;
    o.rpc.initial_backoff = absl::Milliseconds(50);
    return o;
  }

  // A raw JSON-RPC call to Anvil (automine control, mining).
  absl::Status Rpc(std::string_view method, nlohmann::json params) {
    return eth_->rpc().Call(method, std::move(params)).status();
  }

  void SetUpWorld() {
    const absl::Status s = world_.Setup(ledger_.get());
    ASSERT_TRUE(s.ok()) << s;
  }

  uint64_t ChainNonce(const Address& a) { return eth_->GetTransactionCount(a, "latest").value(); }

  World world_;
  std::unique_ptr<AnvilProcess> anvil_;
  std::filesystem::path dir_;
  const crypto::PrivateKey deployer_ = crypto::PrivateKey::FromHex(test::kAnvilDevKey0).value();
  Address contract_{};
  std::unique_ptr<evm::EthClient> eth_;
  std::unique_ptr<LedgerClient> ledger_;
};

TEST_F(EvmLedgerTest, DeploysAndOpensWithTheParameters) {
  const Params params = ledger_->GetParams().value();
  EXPECT_EQ(params.unbonding_epochs, 2u);
  EXPECT_EQ(params.epoch_length_s, 3600u);
  EXPECT_EQ(params.fee_per_token, Amount(1));
  EXPECT_EQ(params.slash_bps, 1000u);
  EXPECT_EQ(params.reporter_share_bps, 1000u);
  EXPECT_EQ(params.domain.chain_id, 31337u);
  EXPECT_EQ(params.domain.ledger, contract_);
  const Epoch epoch0 = ledger_->CurrentEpoch().value();
  EXPECT_EQ(epoch0.number, 0u);
  EXPECT_GT(epoch0.started_unix_s, 0);

  // A constructor revert comes back with its status code, and nothing is deployed.
  EvmDeployParams bad;
  bad.slash_bps = 10'001;
  EXPECT_EQ(DeployEvmLedger(anvil_->url(), 31337, deployer_, bad, DeployOptions()).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(DeployEvmLedger(anvil_->url(), 5, deployer_, EvmDeployParams{}, DeployOptions())
                .status()
                .code(),
            absl::StatusCode::kFailedPrecondition);

  EvmLedgerOptions wrong_chain = Options();
  wrong_chain.chain_id = 1;
  EXPECT_EQ(OpenEvmLedger(wrong_chain).status().code(), absl::StatusCode::kFailedPrecondition);
  EvmLedgerOptions no_code = Options();
  no_code.contract = test::StrangerKey().address();
  EXPECT_EQ(OpenEvmLedger(no_code).status().code(), absl::StatusCode::kNotFound);
  EvmLedgerOptions twice = Options();
  twice.signers.push_back(test::WorldClientKey());
  EXPECT_EQ(OpenEvmLedger(twice).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(EvmLedgerTest, RegistryStakeEpochAndSnapshotRoundTrip) {
  SetUpWorld();
  const Address n0 = world_.node(0);
  const NodeInfo info = ledger_->GetNode(n0).value();
  EXPECT_EQ(info.address, n0);
  EXPECT_EQ(info.endpoint, "node0:7000");
  ASSERT_EQ(info.echelons.size(), 1u);
  EXPECT_EQ(info.echelons[0].echelon_id, world_.echelon());
  EXPECT_EQ(info.echelons[0].model_digest, world_.model());
  EXPECT_EQ(info.registered_epoch, 0u);

  EXPECT_EQ(world_.epoch().number, 1u);
  const Epoch current = ledger_->CurrentEpoch().value();
  EXPECT_EQ(current.number, 1u);
  EXPECT_EQ(current.seed, world_.epoch().seed);
  EXPECT_EQ(ledger_->GetEpoch(1).value().seed, world_.epoch().seed);
  EXPECT_NE(ledger_->GetEpoch(0).value().seed, world_.epoch().seed);
  EXPECT_EQ(ledger_->GetEpoch(9).status().code(), absl::StatusCode::kNotFound);

  const std::vector<Candidate> snapshot = ledger_->EchelonSnapshot(1, world_.echelon()).value();
  ASSERT_EQ(snapshot.size(), World::kNodes);
  for (size_t i = 1; i < snapshot.size(); ++i) {
    EXPECT_LT(snapshot[i - 1].address, snapshot[i].address);
  }
  for (size_t i = 0; i < World::kNodes; ++i) {
    const auto it = std::find_if(snapshot.begin(), snapshot.end(),
                                 [&](const Candidate& c) { return c.address == world_.node(i); });
    ASSERT_NE(it, snapshot.end());
    EXPECT_EQ(it->stake, Amount(10'000 + 1'000 * i));
  }
  EXPECT_TRUE(ledger_->EchelonSnapshot(0, world_.echelon()).value().empty());
  EXPECT_EQ(ledger_->EchelonSnapshot(7, world_.echelon()).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(ledger_->ListNodes().value().size(), World::kNodes);
  EXPECT_EQ(ledger_->SnapshotEchelons(1).value(), std::vector<Hash256>{world_.echelon()});
  EXPECT_TRUE(ledger_->SnapshotEchelons(0).value().empty());
  EXPECT_EQ(ledger_->SnapshotEchelons(5).status().code(), absl::StatusCode::kNotFound);

  // Unstake: out of the next snapshot, withdrawable after unbonding_epochs.
  ASSERT_TRUE(ledger_->Unstake(n0, Amount(1'000)).ok());
  StakeInfo stake = ledger_->GetStake(n0).value();
  EXPECT_EQ(stake.bonded, Amount(9'000));
  ASSERT_EQ(stake.unbonding.size(), 1u);
  EXPECT_EQ(stake.unbonding[0].amount, Amount(1'000));
  EXPECT_EQ(stake.unbonding[0].release_epoch, 3u);
  EXPECT_EQ(ledger_->WithdrawStake(n0, Amount(1)).code(), absl::StatusCode::kFailedPrecondition);

  ASSERT_TRUE(ledger_->UpdateNode(n0, "node0:7001", {{world_.model(), world_.echelon()}}).ok());
  EXPECT_EQ(ledger_->GetNode(n0).value().endpoint, "node0:7001");

  EXPECT_EQ(ledger_->AdvanceEpochFrom(0).status().code(), absl::StatusCode::kFailedPrecondition);
  const Epoch e2 = ledger_->AdvanceEpochFrom(1).value();
  EXPECT_EQ(e2.number, 2u);
  EXPECT_EQ(ledger_->CurrentEpoch().value().seed, e2.seed);
  const std::vector<Candidate> s2 = ledger_->EchelonSnapshot(2, world_.echelon()).value();
  const auto it =
      std::find_if(s2.begin(), s2.end(), [&](const Candidate& c) { return c.address == n0; });
  ASSERT_NE(it, s2.end());
  EXPECT_EQ(it->stake, Amount(9'000));
  const Epoch e3 = ledger_->AdvanceEpoch().value();
  EXPECT_EQ(e3.number, 3u);
  stake = ledger_->GetStake(n0).value();
  EXPECT_EQ(stake.withdrawable, Amount(1'000));
  const Uint256 balance_before = eth_->GetBalance(n0).value();
  ASSERT_TRUE(ledger_->WithdrawStake(n0, Amount(1'000)).ok());
  EXPECT_TRUE(ledger_->GetStake(n0).value().withdrawable.IsZero());
  EXPECT_NE(eth_->GetBalance(n0).value(), balance_before);  // paid out (less gas)

  // Escrow in and out, in two steps: request, then withdraw once unlocked.
  EXPECT_EQ(ledger_->EscrowBalance(world_.client()).value(), Amount(100'000));
  ASSERT_TRUE(ledger_->RequestEscrowWithdrawal(world_.client(), Amount(40'000)).ok());
  const uint64_t unbonding = ledger_->GetParams().value().unbonding_epochs;
  EXPECT_EQ(ledger_->EscrowStatus(world_.client()).value(),
            (EscrowInfo{Amount(100'000), Amount(40'000), 3 + unbonding, Amount()}));
  EXPECT_EQ(ledger_->WithdrawEscrow(world_.client(), Amount(40'000)).code(),
            absl::StatusCode::kFailedPrecondition);
  for (uint64_t i = 0; i < unbonding; ++i) ASSERT_TRUE(ledger_->AdvanceEpoch().ok());
  EXPECT_EQ(ledger_->EscrowStatus(world_.client()).value().withdrawable, Amount(40'000));
  ASSERT_TRUE(ledger_->WithdrawEscrow(world_.client(), Amount(40'000)).ok());
  EXPECT_EQ(ledger_->EscrowStatus(world_.client()).value(),
            (EscrowInfo{Amount(60'000), Amount(), 0, Amount()}));
  EXPECT_TRUE(ledger_->RewardBalance(n0).value().IsZero());
  EXPECT_EQ(ledger_->WithdrawRewards(n0, Amount(1)).code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(EvmLedgerTest, HonestCertificateSettlesPaysTheCommitteeAndIsSettled) {
  SetUpWorld();
  const consensus::ConsensusRequest r = world_.Request(1);
  const SettlementItem item = world_.Honest(r);
  const Hash256 id = consensus::RequestId(r);
  EXPECT_FALSE(ledger_->IsSettled(id).value());

  const std::vector<SettlementResult> results =
      ledger_->SettleCertificates(world_.node(0), std::span(&item, 1)).value();
  ASSERT_EQ(results.size(), 1u);
  EXPECT_TRUE(results[0].status.ok()) << results[0].status;
  EXPECT_EQ(results[0].request_id, id);
  EXPECT_EQ(results[0].check, consensus::CertificateCheck::kValid);
  const Amount fee(4 + 16);  // 1 per token
  EXPECT_EQ(results[0].fee, fee);
  EXPECT_EQ(world_.Escrow(), Amount(100'000 - 20));
  // 20 / 3: 6 each, the remainder 2 to the first member.
  const std::vector<Address>& committee = item.certificate.committee;
  EXPECT_EQ(ledger_->RewardBalance(committee[0]).value(), Amount(8));
  EXPECT_EQ(ledger_->RewardBalance(committee[1]).value(), Amount(6));
  EXPECT_EQ(ledger_->RewardBalance(committee[2]).value(), Amount(6));
  EXPECT_TRUE(ledger_->IsSettled(id).value());
  EXPECT_FALSE(ledger_->IsSettled(consensus::RequestId(world_.Request(2))).value());

  // Rewards are withdrawable.
  ASSERT_TRUE(ledger_->WithdrawRewards(committee[1], Amount(6)).ok());
  EXPECT_TRUE(ledger_->RewardBalance(committee[1]).value().IsZero());

  // Settling it again is refused before anything is sent.
  const uint64_t nonce_before = ChainNonce(world_.node(0));
  const std::vector<SettlementResult> again =
      ledger_->SettleCertificates(world_.node(0), std::span(&item, 1)).value();
  EXPECT_EQ(again[0].status.code(), absl::StatusCode::kAlreadyExists) << again[0].status;
  EXPECT_TRUE(absl::StrContains(again[0].status.message(), "is already settled"))
      << again[0].status;
  EXPECT_EQ(ChainNonce(world_.node(0)), nonce_before);
  // Another request with the same client nonce: named by the log that closed the nonce.
  consensus::ConsensusRequest same_nonce = world_.Request(1);
  same_nonce.max_tokens = 17;
  const SettlementItem other = world_.Honest(same_nonce);
  const SettlementResult refused =
      ledger_->SettleCertificates(world_.node(0), std::span(&other, 1)).value()[0];
  EXPECT_EQ(refused.status.code(), absl::StatusCode::kAlreadyExists) << refused.status;
  EXPECT_TRUE(absl::StrContains(refused.status.message(),
                                absl::StrCat("settled by request ", evm::ToHex(id))))
      << refused.status;
  EXPECT_EQ(world_.Escrow(), Amount(100'000 - 20));

  // A batch: two new ones, one twice, one above its max_fee.
  const std::vector<SettlementItem> batch = {
      world_.Honest(world_.Request(2)), world_.Honest(world_.Request(3)),
      world_.Honest(world_.Request(2)), world_.Honest(world_.Request(4, /*max_fee=*/5))};
  const std::vector<SettlementResult> rb =
      ledger_->SettleCertificates(world_.client(), batch).value();
  ASSERT_EQ(rb.size(), 4u);
  EXPECT_TRUE(rb[0].status.ok()) << rb[0].status;
  EXPECT_TRUE(rb[1].status.ok()) << rb[1].status;
  EXPECT_EQ(rb[2].status.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(rb[3].status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(world_.Escrow(), Amount(100'000 - 3 * 20));

  // The settlements read back from the chain: (settled epoch, request id) order, submitters from
  // the transactions, request epochs from their calldata.
  const std::vector<SettlementRecord> records = ledger_->ListSettlements(0).value();
  ASSERT_EQ(records.size(), 3u);
  for (size_t i = 0; i < records.size(); ++i) {
    const bool first = records[i].request_id == id;
    EXPECT_EQ(records[i].submitter, first ? world_.node(0) : world_.client());
    EXPECT_EQ(records[i].client, world_.client());
    EXPECT_EQ(records[i].fee, Amount(20));
    EXPECT_EQ(records[i].request_epoch, 1u);
    EXPECT_EQ(records[i].settled_epoch, 1u);
    if (i > 0) {
      EXPECT_LT(records[i - 1].request_id, records[i].request_id);
    }
  }
  const std::vector<SettlementRecord> last = ledger_->ListSettlements(2).value();
  ASSERT_EQ(last.size(), 2u);
  EXPECT_EQ(last[0].request_id, records[1].request_id);
  EXPECT_EQ(last[1].request_id, records[2].request_id);
  ASSERT_TRUE(ledger_->AdvanceEpoch().ok());
  const SettlementItem later = world_.Honest(world_.Request(5));
  ASSERT_TRUE(
      ledger_->SettleCertificates(world_.node(2), std::span(&later, 1)).value()[0].status.ok());
  const std::vector<SettlementRecord> newest = ledger_->ListSettlements(1).value();
  ASSERT_EQ(newest.size(), 1u);
  EXPECT_EQ(newest[0].request_id, consensus::RequestId(later.certificate.request));
  EXPECT_EQ(newest[0].request_epoch, 1u);
  EXPECT_EQ(newest[0].settled_epoch, 2u);
  EXPECT_EQ(newest[0].submitter, world_.node(2));
}

TEST_F(EvmLedgerTest, EscrowCoversTheRunningTotalOfABatch) {
  ASSERT_TRUE(world_.Setup(ledger_.get(), /*escrow=*/50).ok());
  const std::vector<SettlementItem> batch = {world_.Honest(world_.Request(1)),
                                             world_.Honest(world_.Request(2)),
                                             world_.Honest(world_.Request(3))};
  const std::vector<SettlementResult> r =
      ledger_->SettleCertificates(world_.client(), batch).value();
  EXPECT_TRUE(r[0].status.ok());
  EXPECT_TRUE(r[1].status.ok());
  EXPECT_EQ(r[2].status.code(), absl::StatusCode::kFailedPrecondition) << r[2].status;
  EXPECT_EQ(world_.Escrow(), Amount(10));
}

// The same kinds of bad certificates, built on an embedded ledger and on the chain, get the same
// status code, CertificateCheck and member, item by item.
TEST_F(EvmLedgerTest, LocallyBadCertificatesGetTheEmbeddedBackendsVerdicts) {
  SetUpWorld();
  World embedded_world;
  EmbeddedLedgerOptions embedded_options;
  embedded_options.chain_id = 31337;
  std::unique_ptr<LedgerClient> embedded =
      OpenEmbeddedLedger(dir_ / "embedded.db", embedded_options).value();
  ASSERT_TRUE(embedded_world.Setup(embedded.get()).ok());

  auto build = [](const World& w) {
    std::vector<SettlementItem> items;
    uint64_t nonce = 100;
    items.push_back(w.Honest(w.Request(nonce++)));
    {  // the client signature of another key
      SettlementItem item = w.Honest(w.Request(nonce++));
      item.certificate.client_signature = test::StrangerKey().Sign(consensus::ClientRequestDigest(
          w.params().domain, consensus::RequestId(item.certificate.request)));
      items.push_back(item);
    }
    {  // member 1's signature by someone else
      SettlementItem item = w.Honest(w.Request(nonce++));
      item.certificate.attestations[1].signature =
          test::StrangerKey().Sign(consensus::AttestationDigest(item.certificate.attestations[1]));
      items.push_back(item);
    }
    {  // another output than the one attested
      SettlementItem item = w.Honest(w.Request(nonce++));
      item.output = World::Output(500);
      items.push_back(item);
    }
    {  // a lazy member: member 2 signed C with another p
      SettlementItem item = w.Honest(w.Request(nonce++));
      consensus::Attestation& a = item.certificate.attestations[2];
      a.proof = crypto::Sha256Of(std::string_view("copied"));
      a.signature = w.KeyOf(a.member).Sign(consensus::AttestationDigest(a));
      items.push_back(item);
    }
    {  // committee in the wrong order
      SettlementItem item = w.Honest(w.Request(nonce++));
      std::swap(item.certificate.committee[0], item.certificate.committee[1]);
      std::swap(item.certificate.attestations[0], item.certificate.attestations[1]);
      items.push_back(item);
    }
    {  // a request of an epoch that has not started
      consensus::ConsensusRequest r = w.Request(nonce++);
      r.epoch = 9;
      SettlementItem item = w.Honest(w.Request(nonce++));
      item.certificate.request = r;
      item.certificate.client_signature = w.ClientSign(r);
      items.push_back(item);
    }
    {  // no attestations
      SettlementItem item = w.Honest(w.Request(nonce++));
      item.certificate.attestations.clear();
      items.push_back(item);
    }
    {  // a cross_validation request without its xv certificate
      SettlementItem item = w.Honest(w.Request(nonce++));
      item.certificate.request.security = {consensus::SecurityMode::kCrossValidation, 0, 1, 1, {}};
      items.push_back(item);
    }
    items.push_back(w.Honest(w.Request(nonce++, /*max_fee=*/19)));  // fee 20 above max_fee
    return items;
  };
  const std::vector<SettlementItem> on_chain = build(world_);
  const std::vector<SettlementItem> in_file = build(embedded_world);
  const std::vector<SettlementResult> evm =
      ledger_->SettleCertificates(world_.node(1), on_chain).value();
  const std::vector<SettlementResult> emb =
      embedded->SettleCertificates(embedded_world.node(1), in_file).value();
  ASSERT_EQ(evm.size(), emb.size());
  for (size_t i = 0; i < evm.size(); ++i) {
    SCOPED_TRACE(testing::Message()
                 << "item " << i << ": evm " << evm[i].status << " / embedded " << emb[i].status);
    EXPECT_EQ(evm[i].status.code(), emb[i].status.code());
    EXPECT_EQ(evm[i].check, emb[i].check);
    EXPECT_EQ(evm[i].member, emb[i].member);
    EXPECT_EQ(evm[i].fee, emb[i].fee);
  }
  // The verdicts are the ones the tampering calls for (so the comparison is not vacuous).
  EXPECT_TRUE(evm[0].status.ok());
  EXPECT_EQ(evm[1].check, consensus::CertificateCheck::kBadClientSignature);
  EXPECT_EQ(evm[2].check, consensus::CertificateCheck::kBadSignature);
  EXPECT_EQ(evm[2].member, 1);
  EXPECT_EQ(evm[3].check, consensus::CertificateCheck::kWrongOutput);
  EXPECT_EQ(evm[4].check, consensus::CertificateCheck::kLazyMember);
  EXPECT_EQ(evm[5].check, consensus::CertificateCheck::kWrongCommittee);
  EXPECT_EQ(evm[6].status.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(evm[7].status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(evm[8].status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(evm[9].status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(world_.Escrow(), Amount(100'000 - 20));  // only the honest one paid
}

TEST_F(EvmLedgerTest, RevertReasonsSurfaceWithTheirStatusCodes) {
  SetUpWorld();
  const Address n0 = world_.node(0);
  const uint64_t nonce_before = ChainNonce(n0);
  const absl::Status too_much = ledger_->Unstake(n0, Amount(123'456));
  EXPECT_EQ(too_much.code(), absl::StatusCode::kFailedPrecondition) << too_much;
  EXPECT_TRUE(absl::StrContains(too_much.message(), "123456")) << too_much;
  EXPECT_TRUE(absl::StrContains(too_much.message(), "10000")) << too_much;
  EXPECT_FALSE(absl::StartsWith(too_much.message(), "FAILED_PRECONDITION")) << too_much;
  EXPECT_EQ(ChainNonce(n0), nonce_before);  // the simulation stopped it: nothing was sent

  EXPECT_EQ(ledger_->RegisterNode(n0, "node0:7000", {}).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(ledger_->UpdateNode(world_.client(), "c:1", {}).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ledger_->GetNode(world_.client()).status().code(), absl::StatusCode::kNotFound);
  // Staking while unregistered: NOT_FOUND, as the embedded backend says.
  EXPECT_EQ(ledger_->Stake(world_.client(), Amount(5)).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ledger_->WithdrawEscrow(world_.client(), Amount(1'000'000)).code(),
            absl::StatusCode::kFailedPrecondition);
  // Checked before anything is sent, with the embedded backend's codes.
  EXPECT_EQ(ledger_->RegisterNode(world_.client(), "no port", {}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ledger_->Stake(n0, Amount(0)).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      ledger_
          ->RegisterNode(world_.client(), "c:1",
                         {{world_.model(), world_.echelon()}, {world_.model(), world_.model()}})
          .code(),
      absl::StatusCode::kInvalidArgument);
}

TEST_F(EvmLedgerTest, NoKeyForTheActorIsPermissionDeniedBeforeAnythingIsSent) {
  SetUpWorld();
  const Address stranger = test::StrangerKey().address();
  const uint64_t block_before = eth_->BlockNumber().value();
  EXPECT_EQ(ledger_->DepositEscrow(stranger, Amount(5)).code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(ledger_->RegisterNode(stranger, "s:1", {}).code(), absl::StatusCode::kPermissionDenied);
  const SettlementItem item = world_.Honest(world_.Request(1));
  EXPECT_EQ(ledger_->SettleCertificates(stranger, std::span(&item, 1)).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(eth_->BlockNumber().value(), block_before);
  EXPECT_EQ(ChainNonce(stranger), 0u);
  EXPECT_FALSE(ledger_->IsSettled(consensus::RequestId(item.certificate.request)).value());

  // A read-only client (no keys) reads, and cannot even advance the epoch.
  EvmLedgerOptions read_only = Options();
  read_only.signers.clear();
  std::unique_ptr<LedgerClient> reader = OpenEvmLedger(read_only).value();
  EXPECT_EQ(reader->CurrentEpoch().value().number, 1u);
  EXPECT_EQ(reader->AdvanceEpoch().status().code(), absl::StatusCode::kPermissionDenied);
}

TEST_F(EvmLedgerTest, ConcurrentCallsOfOneSignerGetDistinctNonces) {
  SetUpWorld();
  const Address n0 = world_.node(0);
  const uint64_t nonce_before = ChainNonce(n0);
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 3; ++i) {
        if (!ledger_->Stake(n0, Amount(1)).ok()) ++failures;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(ledger_->GetStake(n0).value().bonded, Amount(10'012));
  EXPECT_EQ(ChainNonce(n0), nonce_before + 12);
}

// Two clients (two journals) signing for one account: the one whose counted nonce went stale gets
// "nonce too low", re-reads the nonce and signs again; both intents land once.
TEST_F(EvmLedgerTest, StaleNonceIsReadAgain) {
  SetUpWorld();
  const Address n0 = world_.node(0);
  std::unique_ptr<LedgerClient> a = OpenEvmLedger(Options(dir_ / "a.db")).value();
  std::unique_ptr<LedgerClient> b = OpenEvmLedger(Options(dir_ / "b.db")).value();
  const uint64_t nonce_before = ChainNonce(n0);
  ASSERT_TRUE(b->Stake(n0, Amount(1)).ok());    // b counts nonce_before + 1 next
  ASSERT_TRUE(a->Stake(n0, Amount(10)).ok());   // a reads the chain: takes nonce_before + 1
  ASSERT_TRUE(b->Stake(n0, Amount(100)).ok());  // b's nonce is taken: re-read, re-signed
  EXPECT_EQ(ledger_->GetStake(n0).value().bonded, Amount(10'111));
  EXPECT_EQ(ChainNonce(n0), nonce_before + 3);
  auto journal = evm_backend::TxJournal::Open(dir_ / "b.db", 31337, contract_).value();
  const std::vector<evm_backend::JournaledTx> all = journal->All(n0).value();
  ASSERT_EQ(all.size(), 3u);  // the one refused, then its re-signed twin
  EXPECT_EQ(journal->StateOf(all[1].hash).value(), evm_backend::TxState::kDropped);
  EXPECT_EQ(journal->StateOf(all[2].hash).value(), evm_backend::TxState::kMined);
  EXPECT_TRUE(journal->Pending().value().empty());
}

TEST_F(EvmLedgerTest, ConfirmationsDelayWhatViewsSee) {
  SetUpWorld();
  EvmLedgerOptions deep = Options();
  deep.confirmations = 3;
  std::unique_ptr<LedgerClient> client = OpenEvmLedger(deep).value();
  const Address n0 = world_.node(0);
  // Sent by a client without confirmations (one with them waits until its block is 3 deep).
  ASSERT_TRUE(ledger_->Stake(n0, Amount(1)).ok());
  EXPECT_EQ(client->GetStake(n0).value().bonded, Amount(10'000));  // 3 blocks behind
  ASSERT_TRUE(Rpc("anvil_mine", nlohmann::json::array({"0x3"})).ok());
  EXPECT_EQ(client->GetStake(n0).value().bonded, Amount(10'001));
  EXPECT_EQ(ledger_->GetStake(n0).value().bonded, Amount(10'001));
}

TEST_F(EvmLedgerTest, EquivocationIsSlashedOnceAndListed) {
  SetUpWorld();
  const consensus::ConsensusRequest r = world_.Request(1);
  const std::vector<Address> committee = {world_.node(0)};
  const consensus::Attestation a = world_.Attest(world_.node(0), r, committee, World::Output(100));
  const consensus::Attestation b = world_.Attest(world_.node(0), r, committee, World::Output(200));
  const SlashResult slash = ledger_->ReportEquivocation(world_.node(1), a, b).value();
  EXPECT_EQ(slash.offender, world_.node(0));
  EXPECT_EQ(slash.slashed, Amount(1'000));        // 10% of 10'000
  EXPECT_EQ(slash.reporter_reward, Amount(100));  // 10% of that
  EXPECT_EQ(ledger_->GetStake(world_.node(0)).value().bonded, Amount(9'000));
  EXPECT_EQ(ledger_->RewardBalance(world_.node(1)).value(), Amount(100));
  EXPECT_EQ(ledger_->ReportEquivocation(world_.node(2), b, a).status().code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(ledger_->ReportEquivocation(world_.node(2), a, a).status().code(),
            absl::StatusCode::kInvalidArgument);

  const std::vector<SlashRecord> records = ledger_->ListSlashings(0).value();
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].kind, "equivocation");
  EXPECT_EQ(records[0].offender, world_.node(0));
  EXPECT_EQ(records[0].request_id, consensus::RequestId(r));
  EXPECT_EQ(records[0].reporter, world_.node(1));
  EXPECT_EQ(records[0].slashed, Amount(1'000));
  EXPECT_EQ(records[0].reporter_reward, Amount(100));
  EXPECT_EQ(records[0].evidence_hash, slash.evidence_hash);
  EXPECT_EQ(records[0].epoch, 1u);
}

TEST_F(EvmLedgerTest, DisputeSlashesTheMemberAndPaysTheReferees) {
  SetUpWorld();
  // A committee of one (one backup, three referees: five nodes are enough).
  const consensus::ConsensusRequest r = world_.Request(1, 1'000, /*n=*/1);
  const consensus::CommitteeDraws draws = world_.DrawsOf(r);
  ASSERT_EQ(draws.referees.size(), 3u);
  const std::vector<Address> committee = draws.committee;
  const consensus::ConsensusOutput truth = World::Output(100);
  DisputeEvidence ev;
  ev.request = r;
  ev.client_signature = world_.ClientSign(r);
  ev.committee = committee;
  ev.member_attestations = {world_.Attest(committee[0], r, committee, World::Output(666))};
  for (const Address& referee : draws.referees) {
    ev.referee_attestations.push_back(world_.RefereeAttest(referee, r, committee, truth));
  }
  ev.output = truth;
  const Amount member_stake = ledger_->GetStake(committee[0]).value().bonded;
  const DisputeResult result = ledger_->SettleDispute(world_.node(0), ev).value();
  EXPECT_EQ(result.request_id, consensus::RequestId(r));
  EXPECT_EQ(result.slashed, committee);
  EXPECT_EQ(result.rewarded, draws.referees);
  EXPECT_EQ(result.fee, Amount(20));
  EXPECT_TRUE(result.fee_note.empty()) << result.fee_note;
  EXPECT_EQ(result.slashed_total, Amount(member_stake.Low64() / 10));
  EXPECT_TRUE(ledger_->IsSettled(result.request_id).value());
  EXPECT_EQ(world_.Escrow(), Amount(100'000 - 20));
  // The contract keeps one bit per (client, nonce); the logs tell what closed the request.
  const absl::Status twice = ledger_->SettleDispute(world_.node(0), ev).status();
  EXPECT_EQ(twice.code(), absl::StatusCode::kAlreadyExists) << twice;
  EXPECT_TRUE(absl::StrContains(twice.message(), "a dispute for request")) << twice;
  const SettlementItem late = world_.Honest(r, truth);
  const SettlementResult after =
      ledger_->SettleCertificates(world_.node(0), std::span(&late, 1)).value()[0];
  EXPECT_EQ(after.status.code(), absl::StatusCode::kAlreadyExists) << after.status;
  EXPECT_TRUE(absl::StrContains(after.status.message(), "settled by a dispute")) << after.status;
  const std::vector<SlashRecord> records = ledger_->ListSlashings(0).value();
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].kind, "dispute");
  EXPECT_EQ(records[0].offender, committee[0]);

  // No strict majority: FAILED_PRECONDITION from the contract, with its reason.
  const consensus::ConsensusRequest r2 = world_.Request(2, 1'000, 1);
  const consensus::CommitteeDraws d2 = world_.DrawsOf(r2);
  DisputeEvidence ev2;
  ev2.request = r2;
  ev2.client_signature = world_.ClientSign(r2);
  ev2.committee = d2.committee;
  ev2.member_attestations = {world_.Attest(d2.committee[0], r2, d2.committee, World::Output(7))};
  ev2.referee_attestations = {world_.RefereeAttest(d2.referees[0], r2, d2.committee, truth)};
  const absl::Status none = ledger_->SettleDispute(world_.node(0), ev2).status();
  EXPECT_EQ(none.code(), absl::StatusCode::kFailedPrecondition) << none;
  EXPECT_TRUE(absl::StrContains(none.message(), "majority")) << none;
  // Malformed evidence is refused before anything is sent.
  ev2.member_attestations.clear();
  EXPECT_EQ(ledger_->SettleDispute(world_.node(0), ev2).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// A transaction that was journaled but never mined (the chain stopped mining, then lost its pool
// in a restart) is re-sent with the same bytes when the ledger is opened again: it is mined once,
// and no second transaction is signed for it.
TEST_F(EvmLedgerTest, ReopenResendsTheSameJournaledTransactionOnce) {
  SetUpWorld();
  const std::filesystem::path journal = dir_ / "tx.db";
  const Address n0 = world_.node(0);
  const uint64_t nonce_before = ChainNonce(n0);
  ASSERT_TRUE(Rpc("evm_setAutomine", nlohmann::json::array({false})).ok());
  {
    EvmLedgerOptions o = Options(journal);
    o.receipt_timeout = absl::Milliseconds(300);
    std::unique_ptr<LedgerClient> client = OpenEvmLedger(o).value();
    const absl::Status s = client->Stake(n0, Amount(7));
    EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
    EXPECT_TRUE(absl::StrContains(s.message(), "0x")) << s;
  }  // the client is gone ("killed")
  auto tx_journal = evm_backend::TxJournal::Open(journal, 31337, contract_).value();
  const std::vector<evm_backend::JournaledTx> pending = tx_journal->Pending().value();
  ASSERT_EQ(pending.size(), 1u);
  const Hash256 hash = pending[0].hash;
  EXPECT_EQ(pending[0].nonce, nonce_before);
  EXPECT_TRUE(absl::StrContains(pending[0].purpose, "stake 7")) << pending[0].purpose;

  // The chain restarts with its state but without its pool: the transaction is gone.
  ASSERT_TRUE(anvil_->Restart(/*keep_state=*/true).ok());
  EXPECT_FALSE(eth_->GetTransactionReceipt(hash).value().has_value());
  EXPECT_EQ(ledger_->GetStake(n0).value().bonded, Amount(10'000));

  // Reopening re-sends the journaled bytes (same hash) and waits for them.
  std::unique_ptr<LedgerClient> reopened = OpenEvmLedger(Options(journal)).value();
  const std::optional<evm::Receipt> receipt = eth_->GetTransactionReceipt(hash).value();
  ASSERT_TRUE(receipt.has_value());
  EXPECT_TRUE(receipt->status);
  EXPECT_EQ(tx_journal->StateOf(hash).value(), evm_backend::TxState::kMined);
  EXPECT_EQ(ledger_->GetStake(n0).value().bonded, Amount(10'007));
  EXPECT_EQ(ChainNonce(n0), nonce_before + 1);  // one transaction, not two
  EXPECT_EQ(tx_journal->All(n0).value().size(), 1u);

  // Opening once more finds nothing to do; new calls go on from the next nonce.
  std::unique_ptr<LedgerClient> third = OpenEvmLedger(Options(journal)).value();
  ASSERT_TRUE(third->Stake(n0, Amount(1)).ok());
  EXPECT_EQ(ledger_->GetStake(n0).value().bonded, Amount(10'008));
  EXPECT_EQ(ChainNonce(n0), nonce_before + 2);
}

// The same with the pool intact: the re-sent bytes are "already known" to the node, and the
// reopen waits until a block mines them (mined by another thread here).
TEST_F(EvmLedgerTest, ReopenWaitsForAJournaledTransactionStillInThePool) {
  SetUpWorld();
  const std::filesystem::path journal = dir_ / "tx.db";
  const Address n0 = world_.node(0);
  const uint64_t nonce_before = ChainNonce(n0);
  ASSERT_TRUE(Rpc("evm_setAutomine", nlohmann::json::array({false})).ok());
  {
    EvmLedgerOptions o = Options(journal);
    o.receipt_timeout = absl::Milliseconds(300);
    std::unique_ptr<LedgerClient> client = OpenEvmLedger(o).value();
    EXPECT_EQ(client->Stake(n0, Amount(7)).code(), absl::StatusCode::kDeadlineExceeded);
  }
  auto tx_journal = evm_backend::TxJournal::Open(journal, 31337, contract_).value();
  const std::vector<evm_backend::JournaledTx> pending = tx_journal->Pending().value();
  ASSERT_EQ(pending.size(), 1u);
  std::thread miner([&] {
    absl::SleepFor(absl::Milliseconds(700));
    auto rpc = evm::RpcClient::MakeHttp({.url = anvil_->url()}).value();
    (void)rpc->Call("anvil_mine", nlohmann::json::array({"0x1"}));
  });
  absl::StatusOr<std::unique_ptr<LedgerClient>> reopened = OpenEvmLedger(Options(journal));
  miner.join();
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  // Waited for and mined (not given up as refused).
  EXPECT_EQ(tx_journal->StateOf(pending[0].hash).value(), evm_backend::TxState::kMined);
  EXPECT_TRUE(eth_->GetTransactionReceipt(pending[0].hash).value().has_value());
  ASSERT_TRUE(Rpc("evm_setAutomine", nlohmann::json::array({true})).ok());
  EXPECT_EQ(ledger_->GetStake(n0).value().bonded, Amount(10'007));
  EXPECT_EQ(ChainNonce(n0), nonce_before + 1);
}

// A transaction priced out by a base fee that jumped above its max fee is not mined in time
// (DEADLINE_EXCEEDED); the signer's next call replaces it — same nonce, higher fees, journaled —
// and the intent lands exactly once, the stale one marked dropped.
TEST_F(EvmLedgerTest, AStuckTransactionIsReplacedWithHigherFeesAndLandsOnce) {
  SetUpWorld();
  const std::filesystem::path journal = dir_ / "tx.db";
  const Address n0 = world_.node(0);
  const uint64_t nonce_before = ChainNonce(n0);
  EvmLedgerOptions o = Options(journal);
  o.receipt_timeout = absl::Milliseconds(800);
  std::unique_ptr<LedgerClient> client = OpenEvmLedger(o).value();
  ASSERT_TRUE(Rpc("evm_setAutomine", nlohmann::json::array({false})).ok());
  std::thread pricer([&] {
    // Once the stake transaction waits in the pool: the next block's base fee is 1,000 gwei,
    // far above the ~2 gwei the transaction offers, and that block leaves it out.
    absl::SleepFor(absl::Milliseconds(300));
    auto rpc = evm::RpcClient::MakeHttp({.url = anvil_->url()}).value();
    (void)rpc->Call("anvil_setNextBlockBaseFeePerGas", nlohmann::json::array({"0xe8d4a51000"}));
    (void)rpc->Call("evm_mine", nlohmann::json::array());
  });
  EXPECT_EQ(client->Stake(n0, Amount(7)).code(), absl::StatusCode::kDeadlineExceeded);
  pricer.join();
  ASSERT_TRUE(Rpc("evm_setAutomine", nlohmann::json::array({true})).ok());
  EXPECT_EQ(ChainNonce(n0), nonce_before);  // still not mined: priced out

  // The next call of the same signer replaces it, waits for it, then sends its own.
  ASSERT_TRUE(client->Stake(n0, Amount(5)).ok());
  EXPECT_EQ(ledger_->GetStake(n0).value().bonded, Amount(10'000 + 7 + 5));
  EXPECT_EQ(ChainNonce(n0), nonce_before + 2);
  auto tx_journal = evm_backend::TxJournal::Open(journal, 31337, contract_).value();
  std::vector<evm_backend::JournaledTx> all = tx_journal->All(n0).value();
  std::erase_if(all, [&](const evm_backend::JournaledTx& t) { return t.nonce < nonce_before; });
  ASSERT_EQ(all.size(), 3u);  // the stuck one, its replacement (same nonce), the second stake
  EXPECT_EQ(all[0].nonce, all[1].nonce);
  EXPECT_EQ(tx_journal->StateOf(all[0].hash).value(), evm_backend::TxState::kDropped);
  EXPECT_EQ(tx_journal->StateOf(all[1].hash).value(), evm_backend::TxState::kMined);
  EXPECT_EQ(tx_journal->StateOf(all[2].hash).value(), evm_backend::TxState::kMined);
  const evm::SignedTx stuck = evm::DecodeSignedTx(all[0].raw).value();
  const evm::SignedTx replacement = evm::DecodeSignedTx(all[1].raw).value();
  EXPECT_GT(replacement.tx.max_fee_per_gas, stuck.tx.max_fee_per_gas);
  EXPECT_GT(replacement.tx.max_priority_fee_per_gas, stuck.tx.max_priority_fee_per_gas);
  EXPECT_EQ(replacement.tx.data, stuck.tx.data);
  EXPECT_TRUE(tx_journal->Pending().value().empty());
}

// With confirmations, a transaction's receipt counts once its block is that deep. Mined but too
// shallow at the deadline: DEADLINE_EXCEEDED, and the next call does not replace it (it is
// mined), it waits for the depth. A rollback that drops a shallow transaction: the sender
// notices the receipt gone, re-sends the same bytes, and the intent lands once.
TEST_F(EvmLedgerTest, ConfirmationsWaitForDepthAndARolledBackTransactionIsResent) {
  SetUpWorld();
  const std::filesystem::path journal = dir_ / "tx.db";
  const Address n0 = world_.node(0);
  const uint64_t nonce_before = ChainNonce(n0);
  auto mine = [this](int blocks) {
    auto rpc = evm::RpcClient::MakeHttp({.url = anvil_->url()}).value();
    (void)rpc->Call("anvil_mine", nlohmann::json::array({evm::QuantityHex(blocks)}));
  };
  {
    EvmLedgerOptions o = Options(journal);
    o.confirmations = 2;
    o.receipt_timeout = absl::Milliseconds(1500);
    std::unique_ptr<LedgerClient> client = OpenEvmLedger(o).value();
    // Automine makes its block; no block follows it.
    const absl::Status shallow = client->Stake(n0, Amount(7));
    EXPECT_EQ(shallow.code(), absl::StatusCode::kDeadlineExceeded) << shallow;
    EXPECT_TRUE(absl::StrContains(shallow.message(), "but not 2 blocks deep")) << shallow;
    EXPECT_EQ(ChainNonce(n0), nonce_before + 1);
    // The next call: blocks arrive meanwhile; the first transaction is waited for, not replaced.
    std::atomic<bool> stop{false};
    std::thread miner([&] {
      while (!stop) {
        absl::SleepFor(absl::Milliseconds(150));
        mine(1);
      }
    });
    const absl::Status next = client->Stake(n0, Amount(5));
    stop = true;
    miner.join();
    EXPECT_TRUE(next.ok()) << next;
  }
  EXPECT_EQ(ChainNonce(n0), nonce_before + 2);
  EXPECT_EQ(ledger_->GetStake(n0).value().bonded, Amount(10'000 + 7 + 5));
  {
    auto tx_journal = evm_backend::TxJournal::Open(journal, 31337, contract_).value();
    EXPECT_EQ(tx_journal->All(n0).value().size(), 2u);  // no replacement
    EXPECT_TRUE(tx_journal->Pending().value().empty());
  }

  // A rollback drops the block of a shallow transaction.
  EvmLedgerOptions o = Options(journal);
  o.confirmations = 2;
  o.receipt_timeout = absl::Seconds(15);
  std::unique_ptr<LedgerClient> client = OpenEvmLedger(o).value();
  ASSERT_TRUE(Rpc("evm_setAutomine", nlohmann::json::array({false})).ok());
  std::thread chain([&] {
    auto rpc = evm::RpcClient::MakeHttp({.url = anvil_->url()}).value();
    absl::SleepFor(absl::Milliseconds(300));
    mine(1);  // the stake transaction's block
    absl::SleepFor(absl::Milliseconds(300));
    (void)rpc->Call("anvil_rollback", nlohmann::json::array({1}));  // gone with its block
    absl::SleepFor(absl::Milliseconds(2500));  // the sender re-sends it meanwhile
    for (int i = 0; i < 3; ++i) {
      mine(1);
      absl::SleepFor(absl::Milliseconds(200));
    }
  });
  const absl::Status rolled = client->Stake(n0, Amount(3));
  chain.join();
  ASSERT_TRUE(Rpc("evm_setAutomine", nlohmann::json::array({true})).ok());
  EXPECT_TRUE(rolled.ok()) << rolled;
  EXPECT_EQ(ChainNonce(n0), nonce_before + 3);
  EXPECT_EQ(ledger_->GetStake(n0).value().bonded, Amount(10'000 + 7 + 5 + 3));
}

// The chain goes away right after it took the settle transaction: UNAVAILABLE; after it restarts
// (state kept) the next call finds the journaled transaction mined and the request settled once.
TEST_F(EvmLedgerTest, ChainStoppedMidSettlementIsUnavailableThenPaidOnce) {
  SetUpWorld();
  auto real = evm::RpcClient::MakeHttp(
      {.url = anvil_->url(), .max_attempts = 2, .initial_backoff = absl::Milliseconds(50)});
  ASSERT_TRUE(real.ok());
  auto faulty = std::make_shared<FaultyRpc>(std::shared_ptr<evm::RpcClient>(std::move(*real)));
  EvmLedgerOptions o = Options(dir_ / "tx.db");
  o.rpc_client = faulty;
  std::unique_ptr<LedgerClient> client = OpenEvmLedger(o).value();

  const SettlementItem item = world_.Honest(world_.Request(1));
  const Hash256 id = consensus::RequestId(item.certificate.request);
  // Anvil persists a mined block a moment after it answers the send; stopping it before that
  // would restart it with the transaction's state but without its block (and logs), which no
  // real chain does. So the hook waits for the receipt, then stops the chain.
  faulty->FailNextSend(/*forward=*/true, [&](const nlohmann::json& params) {
    const Hash256 hash = evm::TxHash(evm::FromHex(params[0].get<std::string>()).value());
    for (int i = 0; i < 500 && !eth_->GetTransactionReceipt(hash).value().has_value(); ++i) {
      absl::SleepFor(absl::Milliseconds(10));
    }
    anvil_->Stop();
  });
  const absl::StatusOr<std::vector<SettlementResult>> cut =
      client->SettleCertificates(world_.node(0), std::span(&item, 1));
  EXPECT_EQ(cut.status().code(), absl::StatusCode::kUnavailable) << cut.status();
  // While the chain is down, every call is UNAVAILABLE.
  EXPECT_EQ(client->SettleCertificates(world_.node(0), std::span(&item, 1)).status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(client->GetStake(world_.node(0)).status().code(), absl::StatusCode::kUnavailable);

  ASSERT_TRUE(anvil_->Restart(/*keep_state=*/true).ok());
  // The next call re-sends the journaled bytes first (finding them mined), then sees the request
  // settled: nothing is paid twice.
  const std::vector<SettlementResult> again =
      client->SettleCertificates(world_.node(0), std::span(&item, 1)).value();
  EXPECT_EQ(again[0].status.code(), absl::StatusCode::kAlreadyExists) << again[0].status;
  EXPECT_TRUE(client->IsSettled(id).value());
  EXPECT_EQ(world_.Escrow(), Amount(100'000 - 20));
  auto tx_journal = evm_backend::TxJournal::Open(dir_ / "tx.db", 31337, contract_).value();
  EXPECT_TRUE(tx_journal->Pending().value().empty());
}

// The settle transaction never reached the chain: UNAVAILABLE, nothing settled; the next call of
// the submitter re-sends the same bytes, which settle the request (once).
TEST_F(EvmLedgerTest, UnsentTransactionIsFinishedByTheNextCall) {
  SetUpWorld();
  auto real = evm::RpcClient::MakeHttp({.url = anvil_->url()});
  ASSERT_TRUE(real.ok());
  auto faulty = std::make_shared<FaultyRpc>(std::shared_ptr<evm::RpcClient>(std::move(*real)));
  EvmLedgerOptions o = Options();
  o.rpc_client = faulty;
  std::unique_ptr<LedgerClient> client = OpenEvmLedger(o).value();

  const SettlementItem item = world_.Honest(world_.Request(1));
  const Hash256 id = consensus::RequestId(item.certificate.request);
  faulty->FailNextSend(/*forward=*/false);
  EXPECT_EQ(client->SettleCertificates(world_.node(0), std::span(&item, 1)).status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_FALSE(client->IsSettled(id).value());
  EXPECT_EQ(world_.Escrow(), Amount(100'000));

  const uint64_t nonce_before = ChainNonce(world_.node(0));
  const std::vector<SettlementResult> next =
      client->SettleCertificates(world_.node(0), std::span(&item, 1)).value();
  EXPECT_EQ(next[0].status.code(), absl::StatusCode::kAlreadyExists) << next[0].status;
  EXPECT_TRUE(client->IsSettled(id).value());
  EXPECT_EQ(world_.Escrow(), Amount(100'000 - 20));
  EXPECT_EQ(ChainNonce(world_.node(0)), nonce_before + 1);  // the journaled one only

  // The chain really stopped before a call: UNAVAILABLE, then it works after the restart.
  anvil_->Stop();
  const absl::Status down = client->Stake(world_.node(0), Amount(3));
  EXPECT_EQ(down.code(), absl::StatusCode::kUnavailable) << down;
  ASSERT_TRUE(anvil_->Restart(/*keep_state=*/true).ok());
  ASSERT_TRUE(client->Stake(world_.node(0), Amount(3)).ok());
  EXPECT_EQ(client->GetStake(world_.node(0)).value().bonded, Amount(10'003));
}

// ---- Co-signed settlement (docs/ledger_evm.md "Co-signed batches") ----

// Co-signs with the world's node keys (consensus::MakeCosignature); members in `refuse` answer
// UNAVAILABLE, members in `forge` answer with another key's signature. Records what it was asked.
class KeyCosigner final : public Cosigner {
 public:
  KeyCosigner(const World& world, consensus::Domain domain) : world_(world), domain_(domain) {}

  std::vector<absl::StatusOr<crypto::Signature>> Cosign(
      std::span<const Request> requests) override {
    std::vector<absl::StatusOr<crypto::Signature>> out;
    for (const Request& r : requests) {
      asked.push_back(r);
      if (refuse.contains(r.member)) {
        out.push_back(absl::UnavailableError("injected: member unreachable"));
      } else if (forge.contains(r.member)) {
        out.push_back(test::StrangerKey().Sign(consensus::CosignDigestOf(domain_, r.entries)));
      } else {
        out.push_back(consensus::MakeCosignature(domain_, r.entries, world_.KeyOf(r.member)));
      }
    }
    return out;
  }

  std::set<Address> refuse;
  std::set<Address> forge;
  std::vector<Request> asked;

 private:
  const World& world_;
  const consensus::Domain domain_;
};

class EvmCosignTest : public EvmLedgerTest {
 protected:
  void SetUp() override {
    EvmLedgerTest::SetUp();
    if (HasFatalFailure()) return;
    SetUpWorld();
    if (HasFatalFailure()) return;
    cosigner_ = std::make_shared<KeyCosigner>(world_, world_.params().domain);
    EvmLedgerOptions o = Options();
    o.cosigner = cosigner_;
    absl::StatusOr<std::unique_ptr<LedgerClient>> ledger = OpenEvmLedger(o);
    ASSERT_TRUE(ledger.ok()) << ledger.status();
    cosigning_ = std::move(*ledger);
  }

  // The method names of the transactions mined after block `after`, in order.
  std::vector<std::string> MethodsSince(uint64_t after) {
    std::vector<std::string> out;
    const uint64_t head = eth_->BlockNumber().value();
    for (uint64_t b = after + 1; b <= head; ++b) {
      const nlohmann::json block =
          eth_->rpc().Call("eth_getBlockByNumber", {evm::QuantityHex(b), true}).value();
      for (const nlohmann::json& tx : block["transactions"]) {
        const std::string input = tx["input"].get<std::string>();
        for (std::string_view m : {"settle(bytes)", "settleCosigned(bytes)"}) {
          if (absl::StartsWith(input, evm::ToHex(evm::Selector(m)))) out.emplace_back(m);
        }
      }
    }
    return out;
  }

  std::vector<SettlementItem> Batch(uint64_t first_nonce, size_t count) {
    std::vector<SettlementItem> items;
    for (size_t i = 0; i < count; ++i)
      items.push_back(world_.Honest(world_.Request(first_nonce + i)));
    return items;
  }

  // Every item settled with fee 20, and each member got 8 (first slot) or 6 per certificate.
  void ExpectAllPaid(const std::vector<SettlementItem>& items,
                     const std::vector<SettlementResult>& results,
                     const std::map<Address, Amount>& rewards_before) {
    ASSERT_EQ(results.size(), items.size());
    std::map<Address, uint64_t> expected;
    for (size_t i = 0; i < items.size(); ++i) {
      EXPECT_TRUE(results[i].status.ok()) << i << ": " << results[i].status;
      EXPECT_EQ(results[i].fee, Amount(20));
      const std::vector<Address>& committee = items[i].certificate.committee;
      for (size_t j = 0; j < committee.size(); ++j) expected[committee[j]] += j == 0 ? 8 : 6;
    }
    for (const auto& [member, gained] : expected) {
      EXPECT_EQ(cosigning_->RewardBalance(member).value(),
                CheckedAdd(rewards_before.at(member), Amount(gained)).value());
    }
  }

  std::map<Address, Amount> Rewards() {
    std::map<Address, Amount> out;
    for (size_t i = 0; i < World::kNodes; ++i) {
      out[world_.node(i)] = cosigning_->RewardBalance(world_.node(i)).value();
    }
    return out;
  }

  std::shared_ptr<KeyCosigner> cosigner_;
  std::unique_ptr<LedgerClient> cosigning_;
};

TEST_F(EvmCosignTest, ABatchSettlesCoSignedWithTheSameEffectsAndIsListed) {
  const std::vector<SettlementItem> items = Batch(1, 8);
  const std::map<Address, Amount> before = Rewards();
  const uint64_t block = eth_->BlockNumber().value();
  const std::vector<SettlementResult> results =
      cosigning_->SettleCertificates(world_.node(0), items).value();
  ExpectAllPaid(items, results, before);
  EXPECT_EQ(MethodsSince(block), std::vector<std::string>{"settleCosigned(bytes)"});
  EXPECT_EQ(world_.Escrow(), Amount(100'000 - 8 * 20));
  // Each member was asked once, for its slots in batch order.
  std::set<Address> members;
  for (const Cosigner::Request& r : cosigner_->asked) {
    EXPECT_TRUE(members.insert(r.member).second) << "asked twice";
    size_t slots = 0;
    for (const SettlementItem& item : items) {
      for (const consensus::Attestation& a : item.certificate.attestations) {
        if (a.member != r.member) continue;
        ASSERT_LT(slots, r.entries.size());
        EXPECT_EQ(r.entries[slots].digest, consensus::AttestationDigest(a));
        ++slots;
      }
    }
    EXPECT_EQ(slots, r.entries.size());
  }
  // Settled bits, IsSettled and the listing read the co-signed transaction back.
  for (const SettlementItem& item : items) {
    EXPECT_TRUE(cosigning_->IsSettled(consensus::RequestId(item.certificate.request)).value());
  }
  const std::vector<SettlementRecord> records = cosigning_->ListSettlements(0).value();
  ASSERT_EQ(records.size(), items.size());
  for (const SettlementRecord& r : records) {
    EXPECT_EQ(r.submitter, world_.node(0));
    EXPECT_EQ(r.request_epoch, 1u);
    EXPECT_EQ(r.fee, Amount(20));
  }
  // A second settlement of the same batch is refused before anything is sent.
  const std::vector<SettlementResult> again =
      cosigning_->SettleCertificates(world_.node(0), items).value();
  for (const SettlementResult& r : again) {
    EXPECT_EQ(r.status.code(), absl::StatusCode::kAlreadyExists) << r.status;
  }
}

TEST_F(EvmCosignTest, ItemsOfAMemberThatDoesNotCoSignGoThroughSettle) {
  // The draws depend on the epoch seed (prevrandao), so the silent member is the node the fewest
  // items name: the items without it must still be worth co-signing (the backend's threshold:
  // about 6 certificates of 3 slots among 4 members), and some must name it.
  const std::vector<SettlementItem> items = Batch(1, 32);
  auto named_by = [&items](const Address& node) {
    size_t n = 0;
    for (const SettlementItem& item : items) {
      const auto& c = item.certificate.committee;
      n += std::find(c.begin(), c.end(), node) != c.end() ? 1 : 0;
    }
    return n;
  };
  Address silent = world_.node(0);
  for (size_t i = 1; i < World::kNodes; ++i) {
    if (named_by(world_.node(i)) < named_by(silent)) silent = world_.node(i);
  }
  const size_t with_silent = named_by(silent);
  cosigner_->refuse.insert(silent);
  ASSERT_GT(with_silent, 0u) << "no item names the silent node";
  ASSERT_GE(items.size() - with_silent, 8u) << "too few items without the silent node";
  const std::map<Address, Amount> before = Rewards();
  const uint64_t block = eth_->BlockNumber().value();
  const std::vector<SettlementResult> results =
      cosigning_->SettleCertificates(world_.node(1), items).value();
  ExpectAllPaid(items, results, before);
  EXPECT_EQ(MethodsSince(block),
            (std::vector<std::string>{"settleCosigned(bytes)", "settle(bytes)"}));
  // The silent member was asked once; after dropping its items nobody asks it again.
  size_t asked_silent = 0;
  for (const Cosigner::Request& r : cosigner_->asked) asked_silent += r.member == silent ? 1 : 0;
  EXPECT_EQ(asked_silent, 1u);
}

TEST_F(EvmCosignTest, BadCoSignaturesAreCaughtBeforeSendingAndSmallBatchesAreNotCoSigned) {
  // Every member answers with a stranger's signature: nothing co-signed, one settle, all paid.
  for (size_t i = 0; i < World::kNodes; ++i) cosigner_->forge.insert(world_.node(i));
  const std::vector<SettlementItem> items = Batch(1, 6);
  std::map<Address, Amount> before = Rewards();
  uint64_t block = eth_->BlockNumber().value();
  ExpectAllPaid(items, cosigning_->SettleCertificates(world_.node(0), items).value(), before);
  EXPECT_EQ(MethodsSince(block), std::vector<std::string>{"settle(bytes)"});
  EXPECT_FALSE(cosigner_->asked.empty());

  // One certificate of 3 slots and 3 members: co-signing would cost more than it saves, so
  // nobody is asked.
  cosigner_->forge.clear();
  cosigner_->asked.clear();
  const std::vector<SettlementItem> one = Batch(100, 1);
  before = Rewards();
  block = eth_->BlockNumber().value();
  ExpectAllPaid(one, cosigning_->SettleCertificates(world_.node(0), one).value(), before);
  EXPECT_EQ(MethodsSince(block), std::vector<std::string>{"settle(bytes)"});
  EXPECT_TRUE(cosigner_->asked.empty());
}

}  // namespace
}  // namespace atoma::ledger
