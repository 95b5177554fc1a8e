// Multi-node Sampling Consensus over real gRPC on loopback, in one process: every node has its
// own key, journal, fake engine, ConsensusNode and gRPC server, and a connection of its own to
// one shared embedded ledger file (as the devnet's processes do).
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "atoma/consensus/attestation.h"
#include "atoma/consensus/committee.h"
#include "atoma/consensus/cosign.h"
#include "atoma/consensus/request.h"
#include "atoma/consensus/xv.h"
#include "atoma/journal/journal.h"
#include "atoma/journal/outbox.h"
#include "atoma/ledger/ledger.h"
#include "atoma/peer/consensus_node.h"
#include "atoma/v1/peer.grpc.pb.h"
#include "fake_engine.h"
#include "gtest/gtest.h"
#include "testing/temp_dir.h"
#include "testing/test_certs.h"

namespace atoma::peer {
namespace {

namespace fs = std::filesystem;
using api::testing::FakeEngine;
using api::testing::FakeEngineOptions;
using consensus::Attestation;
using consensus::ConsensusRequest;
using std::chrono::milliseconds;

struct TestNode {
  std::optional<crypto::PrivateKey> key;
  std::unique_ptr<ledger::LedgerClient> ledger;
  std::unique_ptr<journal::Journal> journal;
  std::unique_ptr<journal::SettlementOutbox> outbox;
  std::unique_ptr<FakeEngine> engine;
  std::unique_ptr<ConsensusNode> consensus;
  std::unique_ptr<grpc::Server> server;
  int port = 0;
  fs::path dir;

  const Address& address() const { return key->address(); }
  void Stop() {
    if (consensus) consensus->Shutdown(milliseconds(0));
    if (server) server->Shutdown(std::chrono::system_clock::now());
    server.reset();
    outbox.reset();
    consensus.reset();
    if (engine) engine->Shutdown(milliseconds(0));
  }
};

// Polls `done` every 20 ms for up to 6 s; whether it became true.
template <typename Pred>
bool Eventually(Pred done) {
  for (int i = 0; i < 300; ++i) {
    if (done()) return true;
    std::this_thread::sleep_for(milliseconds(20));
  }
  return false;
}

struct NetworkOptions {
  size_t nodes = 3;
  int64_t member_timeout_ms = 5'000;
  int64_t reattest_timeout_ms = 1'000;
  int64_t referee_timeout_ms = 5'000;
  // TLS: every node serves with `tls_cert`/`tls_key` and calls peers trusting `tls_roots`.
  std::string tls_cert, tls_key, tls_roots;
};

NetworkOptions Net(size_t nodes, int64_t member_timeout_ms = 5'000) {
  NetworkOptions o;
  o.nodes = nodes;
  o.member_timeout_ms = member_timeout_ms;
  return o;
}

class PeerTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = test::FreshTestDir("atoma_peer_test_"); }
  void TearDown() override {
    for (auto& n : nodes_) n->Stop();
    nodes_.clear();
    admin_.reset();
    fs::remove_all(dir_);
  }

  fs::path LedgerPath() const { return dir_ / "ledger.db"; }

  // Builds the network, stakes everybody and opens epoch 1 whose snapshot holds them all.
  void Build(const NetworkOptions& o) {
    options_ = o;
    admin_ = ledger::OpenEmbeddedLedger(LedgerPath()).value();
    for (size_t i = 0; i < o.nodes; ++i) {
      auto n = std::make_unique<TestNode>();
      std::string hex(64, '0');
      hex[0] = 'a';
      hex[62] = static_cast<char>('0' + i / 10);
      hex[63] = static_cast<char>('1' + i % 10);
      n->key.emplace(crypto::PrivateKey::FromHex(hex).value());
      n->dir = dir_ / absl::StrCat("node", i);
      FakeEngineOptions eo;
      eo.step = milliseconds(1);
      n->engine = std::make_unique<FakeEngine>(eo);
      StartNode(*n, true);
      ASSERT_TRUE(admin_->Stake(n->address(), ledger::Amount(1000 + 100 * i)).ok());
      nodes_.push_back(std::move(n));
    }
    ASSERT_TRUE(admin_->DepositEscrow(client_.address(), ledger::Amount(1'000'000)).ok());
    epoch_ = admin_->AdvanceEpoch().value().number;
  }

  static crypto::Hash256 Echelon() { return consensus::EchelonId(Digest(), Fingerprint()); }
  static crypto::Hash256 Digest() {
    crypto::Hash256 d;
    d.fill(0xab);  // FakeEngine's
    return d;
  }
  static crypto::Hash256 Fingerprint() {
    crypto::Hash256 f;
    f.fill(0xcd);
    return f;
  }

  // (Re)starts a node's runtime and server on a fresh port and (re)registers its endpoint.
  void StartNode(TestNode& n, bool register_node) {
    n.ledger = ledger::OpenEmbeddedLedger(LedgerPath()).value();
    n.journal = journal::OpenJournal(n.dir).value();
    journal::OutboxOptions oo;
    oo.submitter = n.address();
    oo.max_delay = absl::Milliseconds(20);
    n.outbox = journal::SettlementOutbox::Start(*n.journal, *n.ledger, oo).value();
    Dependencies deps;
    deps.key = &*n.key;
    deps.ledger = n.ledger.get();
    deps.journal = n.journal.get();
    deps.outbox = n.outbox.get();
    deps.models.push_back({n.engine.get(), Echelon()});
    ConsensusOptions co;
    co.member_timeout_ms = options_.member_timeout_ms;
    co.reattest_timeout_ms = options_.reattest_timeout_ms;
    co.referee_timeout_ms = options_.referee_timeout_ms;
    co.peer_call_timeout_ms = 2'000;
    co.salt_timeout_ms = 1'500;
    co.peer_root_certs_pem = options_.tls_roots;
    n.consensus = ConsensusNode::Make(std::move(deps), co).value();
    grpc::ServerBuilder builder;
    std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
    if (!options_.tls_cert.empty()) {
      grpc::SslServerCredentialsOptions tls;
      tls.pem_key_cert_pairs.push_back({options_.tls_key, options_.tls_cert});
      credentials = grpc::SslServerCredentials(tls);
    }
    builder.AddListeningPort("127.0.0.1:0", credentials, &n.port);
    builder.RegisterService(n.consensus->service());
    n.server = builder.BuildAndStart();
    ASSERT_NE(n.server, nullptr);
    const std::string endpoint = absl::StrCat("127.0.0.1:", n.port);
    if (register_node) {
      ASSERT_TRUE(admin_->RegisterNode(n.address(), endpoint, {{Digest(), Echelon()}}).ok());
    } else {
      ASSERT_TRUE(admin_->UpdateNode(n.address(), endpoint, {{Digest(), Echelon()}}).ok());
    }
  }

  // Stops `n` (as a crash would) and starts it again with a new engine of `step` per token and
  // `token_offset` (a dishonest engine), the same key and journal file, on a new port.
  void Restart(TestNode& n, milliseconds step = milliseconds(1), int token_offset = 0) {
    n.Stop();
    FakeEngineOptions eo;
    eo.step = step;
    eo.token_offset = token_offset;
    n.engine = std::make_unique<FakeEngine>(eo);
    n.journal.reset();
    StartNode(n, false);
  }

  ConsensusRequest Request(uint64_t n, uint64_t nonce, uint64_t max_tokens = 8) const {
    ConsensusRequest r;
    r.model_digest = Digest();
    r.prompt_token_ids = {'h', 'i', 5};
    r.max_tokens = max_tokens;
    r.ignore_eos = true;
    r.seed = 42;
    r.security.mode = consensus::SecurityMode::kSampling;
    r.security.n = n;
    r.max_fee = Uint256(1'000'000);
    r.client = client_.address();
    r.client_nonce = nonce;
    r.epoch = epoch_;
    return r;
  }
  crypto::Signature Sign(const ConsensusRequest& r) const {
    return client_.Sign(consensus::ClientRequestDigest(admin_->GetParams().value().domain,
                                                       consensus::RequestId(r)));
  }
  consensus::CommitteeDraws Draws(const ConsensusRequest& r) const {
    const auto epoch = admin_->GetEpoch(r.epoch).value();
    std::vector<consensus::Candidate> candidates;
    const std::vector<ledger::Candidate> snapshot =
        admin_->EchelonSnapshot(r.epoch, Echelon()).value();
    for (const auto& c : snapshot) candidates.push_back({c.address, c.stake});
    const uint64_t n = r.security.n;
    return consensus::SelectCommittee(epoch.seed, consensus::RequestId(r), candidates, n,
                                      consensus::BackupCount(n), consensus::RefereeCount(n))
        .value();
  }
  TestNode* NodeOf(const Address& a) {
    for (auto& n : nodes_) {
      if (n->address() == a) return n.get();
    }
    return nullptr;
  }
  // Finds a nonce whose committee satisfies `want`.
  // (The committee depends on the whole request: ask with the max_tokens the test will use.)
  template <typename Pred>
  uint64_t NonceWhere(uint64_t n, Pred want, uint64_t max_tokens = 8) const {
    for (uint64_t nonce = 1; nonce < 10'000; ++nonce) {
      if (want(Draws(Request(n, nonce, max_tokens)))) return nonce;
    }
    ADD_FAILURE() << "no nonce gives the wanted committee";
    return 0;
  }

  // Runs the round to its end; returns the streamed tokens.
  std::vector<int32_t> RunToEnd(RoundHandle& handle) {
    std::vector<int32_t> tokens;
    engine::StreamEvent ev;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      const RoundHandle::Wait w = handle.Next(&ev, milliseconds(100));
      if (w == RoundHandle::Wait::kToken) tokens.push_back(ev.token_id);
      if (w == RoundHandle::Wait::kDone) return tokens;
    }
    ADD_FAILURE() << "round did not end within 60 s";
    return tokens;
  }

  consensus::CertificateContext Context(uint64_t epoch) const {
    consensus::CertificateContext c;
    c.domain = admin_->GetParams().value().domain;
    c.epoch = epoch;
    c.epoch_seed = admin_->GetEpoch(epoch).value().seed;
    c.echelon_id = Echelon();
    const std::vector<ledger::Candidate> snapshot =
        admin_->EchelonSnapshot(epoch, Echelon()).value();
    for (const auto& x : snapshot) c.registry.push_back({x.address, x.stake});
    return c;
  }

  // Polls the shared ledger until the request is settled (the entry's outbox works in the
  // background).
  bool WaitSettled(const crypto::Hash256& request_id) {
    return Eventually([&] { return admin_->IsSettled(request_id).value_or(false); });
  }

  fs::path dir_;
  NetworkOptions options_;
  std::unique_ptr<ledger::LedgerClient> admin_;
  std::vector<std::unique_ptr<TestNode>> nodes_;
  crypto::PrivateKey client_ = crypto::PrivateKey::FromHex(std::string(63, '0') + "7").value();
  uint64_t epoch_ = 0;
};

TEST_F(PeerTest, HonestRoundCertifiesPaysMembersAndDebitsEscrowOnce) {
  Build(Net(3));
  ASSERT_FALSE(HasFatalFailure());
  const ConsensusRequest r = Request(3, 1);
  const Uint256 escrow_before = admin_->EscrowBalance(client_.address()).value();
  auto handle = nodes_[0]->consensus->Submit(r, Sign(r));
  ASSERT_TRUE(handle.ok()) << handle.status();
  const std::vector<int32_t> streamed = RunToEnd(**handle);
  const RoundOutcome& outcome = (*handle)->outcome();
  ASSERT_TRUE(outcome.status.ok()) << outcome.status;
  ASSERT_EQ(outcome.output.token_ids.size(), 8u);
  EXPECT_EQ(streamed.size(), 8u);
  for (size_t i = 0; i < streamed.size(); ++i) {
    EXPECT_EQ(streamed[i], FakeEngine::TokenAt(42, static_cast<int>(i)));
    EXPECT_EQ(outcome.output.token_ids[i], static_cast<uint32_t>(streamed[i]));
  }
  EXPECT_EQ(outcome.certificate.committee.size(), 3u);
  const consensus::CertificateVerdict verdict =
      consensus::VerifyCertificate(outcome.certificate, outcome.output, Context(epoch_));
  EXPECT_TRUE(verdict.ok()) << verdict.reason;

  ASSERT_TRUE(WaitSettled(consensus::RequestId(r)));
  // fee = 1 per token × (3 prompt + 8 completion) = 11, split 3 ways (remainder to the first).
  EXPECT_EQ(admin_->EscrowBalance(client_.address()).value(),
            CheckedSub(escrow_before, Uint256(11)).value());
  Uint256 paid;
  for (const Address& m : outcome.certificate.committee) {
    const Uint256 reward = admin_->RewardBalance(m).value();
    EXPECT_GE(reward, Uint256(3));
    paid = CheckedAdd(paid, reward).value();
  }
  EXPECT_EQ(paid, Uint256(11));
  // Submitting the same request again is refused (it was accepted before).
  auto again = nodes_[0]->consensus->Submit(r, Sign(r));
  EXPECT_TRUE(absl::IsAlreadyExists(again.status())) << again.status();
  // Another request with the settled nonce could never be paid: refused before any work.
  ConsensusRequest reused = Request(3, 1);
  reused.max_fee = CheckedAdd(reused.max_fee, Uint256(1)).value();
  auto refused = nodes_[0]->consensus->Submit(reused, Sign(reused));
  EXPECT_TRUE(absl::IsAlreadyExists(refused.status())) << refused.status();
  EXPECT_NE(refused.status().message().find("client_nonce: nonce 1"), std::string::npos)
      << refused.status();
  EXPECT_EQ(nodes_[0]->consensus->stats().rounds_started, 1u);
  EXPECT_EQ(nodes_[0]->consensus->stats().rounds_certified, 1u);
}

TEST_F(PeerTest, EntryThatIsNotAMemberRelaysAMembersStream) {
  // n = 1 draws 1 member, 1 backup and 3 referees: with 6 nodes one is outside the draws.
  Build(Net(6));
  ASSERT_FALSE(HasFatalFailure());
  const Address entry = nodes_[0]->address();
  const uint64_t nonce = NonceWhere(
      1, [&](const consensus::CommitteeDraws& d) { return !consensus::IsDrawn(d, entry); });
  const ConsensusRequest r = Request(1, nonce);
  auto handle = nodes_[0]->consensus->Submit(r, Sign(r));
  ASSERT_TRUE(handle.ok()) << handle.status();
  const std::vector<int32_t> streamed = RunToEnd(**handle);
  ASSERT_TRUE((*handle)->outcome().status.ok()) << (*handle)->outcome().status;
  EXPECT_EQ(streamed.size(), 8u);
  EXPECT_EQ((*handle)->outcome().output.token_ids.size(), 8u);
  EXPECT_EQ(nodes_[0]->consensus->stats().executions, 0u);  // the entry computed nothing
  EXPECT_TRUE(consensus::VerifyCertificate((*handle)->outcome().certificate,
                                           (*handle)->outcome().output, Context(epoch_))
                  .ok());
}

// Regression: an entry drawn as backup or referee computes its own output (it may not be shown
// the member's); with n = 1 the member certifies the round before the entry's slower engine is
// done, and the entry must wait for its own output rather than fail.
TEST_F(PeerTest, DrawnEntryThatIsNotAMemberStreamsItsOwnSlowerOutput) {
  Build(Net(3));
  ASSERT_FALSE(HasFatalFailure());
  TestNode& entry = *nodes_[0];
  Restart(entry, milliseconds(15));
  ASSERT_FALSE(HasFatalFailure());
  const uint64_t nonce = NonceWhere(
      1, [&](const consensus::CommitteeDraws& d) { return d.committee[0] != entry.address(); });
  const ConsensusRequest r = Request(1, nonce);
  auto handle = entry.consensus->Submit(r, Sign(r));
  ASSERT_TRUE(handle.ok()) << handle.status();
  const std::vector<int32_t> streamed = RunToEnd(**handle);
  ASSERT_TRUE((*handle)->outcome().status.ok()) << (*handle)->outcome().status;
  EXPECT_EQ(streamed.size(), 8u);
  EXPECT_EQ((*handle)->outcome().output.token_ids.size(), 8u);
  EXPECT_EQ((*handle)->outcome().certificate.committee[0], Draws(r).committee[0]);
}

// --- Cross-validation: provisional result, salt reveal, coin, validators ---

class XvTest : public PeerTest {
 protected:
  ConsensusRequest XvRequest(uint64_t p_micro, uint64_t k, uint64_t nonce) {
    ConsensusRequest r = Request(1, nonce);
    r.security = consensus::Security{};
    r.security.mode = consensus::SecurityMode::kCrossValidation;
    r.security.p_micro = p_micro;
    r.security.k = k;
    salt_.fill(static_cast<uint8_t>(nonce));
    r.security.salt_hash = consensus::XvSaltHash(salt_);
    return r;
  }
  // Runs the round; reveals the salt (unless `reveal` is false) when the provisional result
  // arrives. Returns whether the coin drew a check (nullopt when not revealed).
  std::optional<bool> Run(RoundHandle& handle, bool reveal, ConsensusNode& entry) {
    std::optional<bool> drawn;
    engine::StreamEvent ev;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      const RoundHandle::Wait w = handle.Next(&ev, milliseconds(100));
      if (w == RoundHandle::Wait::kProvisional) {
        const auto p = handle.provisional();
        EXPECT_TRUE(p.has_value());
        if (!p.has_value()) return drawn;
        // What a client checks before revealing: the executor's C commits to the output.
        const std::vector<Address> executor = {p->attestation.member};
        EXPECT_EQ(consensus::Commitment(
                      consensus::OutputProofs(handle.request_id(), p->output, executor)),
                  p->attestation.commitment);
        if (reveal) {
          consensus::XvSalt wrong = salt_;
          wrong[0] ^= 1;
          EXPECT_TRUE(
              absl::IsPermissionDenied(entry.RevealSalt(handle.request_id(), wrong).status()));
          auto r = entry.RevealSalt(handle.request_id(), salt_);
          EXPECT_TRUE(r.ok()) << r.status();
          if (r.ok()) drawn = *r;
          EXPECT_TRUE(
              absl::IsFailedPrecondition(entry.RevealSalt(handle.request_id(), salt_).status()));
        }
      }
      if (w == RoundHandle::Wait::kDone) return drawn;
    }
    ADD_FAILURE() << "round did not end";
    return drawn;
  }
  consensus::XvSalt salt_{};
};

TEST_F(XvTest, AlwaysCheckedExecutorAndValidatorAgreeAndSettle) {
  Build(Net(3));
  ASSERT_FALSE(HasFatalFailure());
  const ConsensusRequest r = XvRequest(1'000'000, 1, 51);
  auto handle = nodes_[0]->consensus->Submit(r, Sign(r));
  ASSERT_TRUE(handle.ok()) << handle.status();
  EXPECT_EQ(Run(**handle, true, *nodes_[0]->consensus), std::optional<bool>(true));
  const RoundOutcome& outcome = (*handle)->outcome();
  ASSERT_TRUE(outcome.status.ok()) << outcome.status;
  ASSERT_TRUE(outcome.xv_certificate.has_value());
  EXPECT_EQ(outcome.xv_certificate->validators.size(), 1u);
  EXPECT_TRUE(
      consensus::VerifyXvCertificate(*outcome.xv_certificate, outcome.output, Context(epoch_))
          .ok());
  EXPECT_TRUE(WaitSettled(consensus::RequestId(r)));
}

TEST_F(XvTest, NeverCheckedIsTheExecutorAlone) {
  Build(Net(3));
  ASSERT_FALSE(HasFatalFailure());
  const ConsensusRequest r = XvRequest(0, 1, 52);
  auto handle = nodes_[0]->consensus->Submit(r, Sign(r));
  ASSERT_TRUE(handle.ok()) << handle.status();
  EXPECT_EQ(Run(**handle, true, *nodes_[0]->consensus), std::optional<bool>(false));
  const RoundOutcome& outcome = (*handle)->outcome();
  ASSERT_TRUE(outcome.status.ok()) << outcome.status;
  ASSERT_TRUE(outcome.xv_certificate.has_value());
  EXPECT_TRUE(outcome.xv_certificate->validators.empty());
  EXPECT_TRUE(outcome.xv_certificate->salt.has_value());
  EXPECT_TRUE(
      consensus::VerifyXvCertificate(*outcome.xv_certificate, outcome.output, Context(epoch_))
          .ok());
  EXPECT_TRUE(WaitSettled(consensus::RequestId(r)));
}

TEST_F(XvTest, UnrevealedSaltEndsWithTheExecutorsResultAfterTheTimeout) {
  Build(Net(3));
  ASSERT_FALSE(HasFatalFailure());
  const ConsensusRequest r = XvRequest(1'000'000, 1, 53);
  auto handle = nodes_[0]->consensus->Submit(r, Sign(r));
  ASSERT_TRUE(handle.ok()) << handle.status();
  EXPECT_EQ(Run(**handle, false, *nodes_[0]->consensus), std::nullopt);
  const RoundOutcome& outcome = (*handle)->outcome();
  ASSERT_TRUE(outcome.status.ok()) << outcome.status;
  ASSERT_TRUE(outcome.xv_certificate.has_value());
  EXPECT_TRUE(outcome.xv_certificate->unrevealed());
  EXPECT_TRUE(
      consensus::VerifyXvCertificate(*outcome.xv_certificate, outcome.output, Context(epoch_))
          .ok());
  // Too late: the round is decided (FAILED_PRECONDITION) or already gone (NOT_FOUND).
  const absl::Status late =
      nodes_[0]->consensus->RevealSalt(consensus::RequestId(r), salt_).status();
  EXPECT_TRUE(absl::IsNotFound(late) || absl::IsFailedPrecondition(late)) << late;
}

TEST_F(PeerTest, RequestsTheEntryMustRefuse) {
  Build(Net(3));
  ASSERT_FALSE(HasFatalFailure());
  ConsensusNode& entry = *nodes_[0]->consensus;
  ConsensusRequest r = Request(3, 5);
  // Forged client authorization.
  crypto::Signature forged = Sign(r);
  forged[5] ^= 1;
  EXPECT_TRUE(absl::IsPermissionDenied(entry.Submit(r, forged).status()));
  // Signed by someone else.
  const crypto::PrivateKey other = crypto::PrivateKey::FromHex(std::string(63, '0') + "9").value();
  EXPECT_TRUE(absl::IsPermissionDenied(entry
                                           .Submit(r, other.Sign(consensus::ClientRequestDigest(
                                                          entry.domain(), consensus::RequestId(r))))
                                           .status()));
  // Committee larger than the echelon.
  ConsensusRequest big = Request(4, 5);
  EXPECT_TRUE(absl::IsFailedPrecondition(entry.Submit(big, Sign(big)).status()));
  // max_fee below the worst case (1 per token × (3 + 8)).
  ConsensusRequest cheap = Request(3, 6);
  cheap.max_fee = Uint256(10);
  EXPECT_TRUE(absl::IsFailedPrecondition(entry.Submit(cheap, Sign(cheap)).status()));
  // An epoch that is not the current one.
  ConsensusRequest old = Request(3, 7);
  old.epoch = epoch_ - 1;
  EXPECT_TRUE(absl::IsFailedPrecondition(entry.Submit(old, Sign(old)).status()));
  // Unknown model.
  ConsensusRequest unknown = Request(3, 8);
  unknown.model_digest.fill(0x11);
  EXPECT_TRUE(absl::IsNotFound(entry.Submit(unknown, Sign(unknown)).status()));
  // Cross-validation with more validators than the echelon can draw.
  ConsensusRequest xv = Request(3, 9);
  xv.security = consensus::Security{consensus::SecurityMode::kCrossValidation, 0, 500'000, 5, {}};
  EXPECT_TRUE(absl::IsFailedPrecondition(entry.Submit(xv, Sign(xv)).status()));
  // Security none needs no round.
  ConsensusRequest none = Request(3, 10);
  none.security = consensus::Security{};
  EXPECT_TRUE(absl::IsInvalidArgument(entry.Submit(none, Sign(none)).status()));
  EXPECT_EQ(entry.stats().rounds_started, 0u);
}

TEST_F(PeerTest, DishonestMemberIsOutvotedByRefereesAndSlashed) {
  // n = 3 among 8 nodes: 3 members, 3 backups, 2 referees.
  Build(Net(8));
  ASSERT_FALSE(HasFatalFailure());
  const Address entry = nodes_[0]->address();
  // A committee with the entry as member 0; the node in slot 2 is made dishonest below.
  const uint64_t nonce = NonceWhere(3, [&](const consensus::CommitteeDraws& d) {
    return d.committee[0] == entry && d.referees.size() == 2;
  });
  const ConsensusRequest r = Request(3, nonce);
  const consensus::CommitteeDraws draws = Draws(r);
  TestNode* liar = NodeOf(draws.committee[2]);
  ASSERT_NE(liar, nullptr);
  // Restart the liar with an engine that computes other tokens.
  Restart(*liar, milliseconds(1), 7);
  ASSERT_FALSE(HasFatalFailure());
  const ledger::StakeInfo liar_stake_before = admin_->GetStake(liar->address()).value();

  auto handle = nodes_[0]->consensus->Submit(r, Sign(r));
  ASSERT_TRUE(handle.ok()) << handle.status();
  RunToEnd(**handle);
  const RoundOutcome& outcome = (*handle)->outcome();
  EXPECT_TRUE(absl::IsAborted(outcome.status)) << outcome.status;
  EXPECT_NE(outcome.detail.find("slashed"), std::string::npos) << outcome.detail;
  const ledger::StakeInfo liar_stake = admin_->GetStake(liar->address()).value();
  EXPECT_LT(liar_stake.bonded, liar_stake_before.bonded);
  // The honest members and the majority referees were paid from the pool.
  for (const Address& a :
       {draws.committee[0], draws.committee[1], draws.referees[0], draws.referees[1]}) {
    EXPECT_GT(admin_->RewardBalance(a).value(), Uint256(0)) << crypto::AddressToString(a);
  }
  EXPECT_EQ(admin_->RewardBalance(liar->address()).value(), Uint256(0));
  EXPECT_TRUE(admin_->IsSettled(consensus::RequestId(r)).value());
  EXPECT_EQ(nodes_[0]->consensus->stats().rounds_disputed, 1u);
}

TEST_F(PeerTest, SilentMemberIsReplacedByABackup) {
  Build(Net(4, 700));
  ASSERT_FALSE(HasFatalFailure());
  const Address entry = nodes_[0]->address();
  const uint64_t nonce = NonceWhere(
      3, [&](const consensus::CommitteeDraws& d) { return d.committee[0] == entry; }, 40);
  const ConsensusRequest r = Request(3, nonce, 40);
  const consensus::CommitteeDraws draws = Draws(r);
  TestNode* gone = NodeOf(draws.committee[1]);
  gone->Stop();  // crashed: its endpoint refuses connections

  auto handle = nodes_[0]->consensus->Submit(r, Sign(r));
  ASSERT_TRUE(handle.ok()) << handle.status();
  RunToEnd(**handle);
  const RoundOutcome& outcome = (*handle)->outcome();
  ASSERT_TRUE(outcome.status.ok()) << outcome.status;
  EXPECT_EQ(outcome.certificate.committee[1], draws.backups[0]);
  EXPECT_TRUE(
      consensus::VerifyCertificate(outcome.certificate, outcome.output, Context(epoch_)).ok());
  EXPECT_TRUE(WaitSettled(consensus::RequestId(r)));
  EXPECT_EQ(admin_->RewardBalance(gone->address()).value(), Uint256(0));
}

// A (client, nonce) settles once, so while a round for it runs (or its certificate waits for
// settlement) the entry refuses another request with the same pair; a round that ends settling
// nothing (no members left) frees the pair.
TEST_F(PeerTest, ANonceInUseIsRefusedUntilItsRoundFailsWithoutSettling) {
  Build(Net(3, 700));
  ASSERT_FALSE(HasFatalFailure());
  const ConsensusRequest r = Request(3, 77);
  // 3 nodes, n = 3: no backups, so a stopped member fails the round after 700 ms.
  TestNode* gone = nullptr;
  for (const Address& m : Draws(r).committee) {
    if (m != nodes_[0]->address()) gone = NodeOf(m);
  }
  ASSERT_NE(gone, nullptr);
  gone->Stop();
  auto handle = nodes_[0]->consensus->Submit(r, Sign(r));
  ASSERT_TRUE(handle.ok()) << handle.status();

  const ConsensusRequest same_nonce = Request(3, 77, /*max_tokens=*/9);
  auto refused = nodes_[0]->consensus->Submit(same_nonce, Sign(same_nonce));
  EXPECT_TRUE(absl::IsAlreadyExists(refused.status())) << refused.status();
  EXPECT_NE(refused.status().message().find("is in use by request"), std::string::npos)
      << refused.status();
  // Another nonce is not affected.
  const ConsensusRequest other = Request(3, 78);
  auto accepted = nodes_[0]->consensus->Submit(other, Sign(other));
  EXPECT_TRUE(accepted.ok()) << accepted.status();

  RunToEnd(**handle);
  EXPECT_TRUE(absl::IsUnavailable((*handle)->outcome().status)) << (*handle)->outcome().status;
  if (accepted.ok()) RunToEnd(**accepted);
  // Nothing of r settles: the nonce is free again.
  auto retried = nodes_[0]->consensus->Submit(same_nonce, Sign(same_nonce));
  EXPECT_TRUE(retried.ok()) << retried.status();
  if (retried.ok()) RunToEnd(**retried);
}

// Polls `node`'s journal until its outbox has recorded the settlement of `request_id` (the ledger
// may show it settled a moment before the outbox marks it).
bool WaitJournaledSettled(TestNode& node, const crypto::Hash256& request_id) {
  return Eventually([&] {
    auto record = node.journal->GetSettlement(request_id);
    return record.ok() && record->state == journal::SettlementState::kSettled;
  });
}

TEST_F(PeerTest, EscrowPendingWithdrawalAndUnsettledRequestsAreNotCountedTwice) {
  // 3 nodes, n = 3: no backups, so a stopped member keeps a round running until it fails.
  Build(Net(3, 2'000));
  ASSERT_FALSE(HasFatalFailure());
  // The client asks for all but 30 of its escrow back: entry nodes stop counting it at once.
  ASSERT_TRUE(admin_->RequestEscrowWithdrawal(client_.address(), Uint256(1'000'000 - 30)).ok());
  ConsensusNode& entry = *nodes_[0]->consensus;
  const ConsensusRequest big = Request(3, 1, /*max_tokens=*/30);  // worst case 33 > 30
  auto refused = entry.Submit(big, Sign(big));
  EXPECT_TRUE(absl::IsFailedPrecondition(refused.status())) << refused.status();
  EXPECT_EQ(refused.status().message(),
            "escrow: the client's escrow 1000000 less 999970 pending withdrawal does not cover "
            "the worst-case fee 33");

  // A (worst case 11) is accepted and stays unsettled: its member is down.
  TestNode& gone = *nodes_[1];
  gone.Stop();
  const ConsensusRequest a = Request(3, 2, /*max_tokens=*/8);
  auto running = entry.Submit(a, Sign(a));
  ASSERT_TRUE(running.ok()) << running.status();
  // C (worst case 20) fits the 30 alone, not beside A's 11.
  const ConsensusRequest c = Request(3, 3, /*max_tokens=*/17);
  refused = entry.Submit(c, Sign(c));
  EXPECT_TRUE(absl::IsFailedPrecondition(refused.status())) << refused.status();
  EXPECT_EQ(refused.status().message(),
            "escrow: the client's escrow 1000000 less 999970 pending withdrawal less 11 reserved "
            "for 1 unsettled request(s) on this node does not cover the worst-case fee 20");
  // A's round fails without a certificate: its reservation goes with its nonce claim.
  RunToEnd(**running);
  EXPECT_TRUE(absl::IsUnavailable((*running)->outcome().status)) << (*running)->outcome().status;
  Restart(gone);
  ASSERT_FALSE(HasFatalFailure());
  auto accepted = entry.Submit(c, Sign(c));
  ASSERT_TRUE(accepted.ok()) << accepted.status();
  RunToEnd(**accepted);
  ASSERT_TRUE((*accepted)->outcome().status.ok()) << (*accepted)->outcome().status;
  ASSERT_TRUE(WaitJournaledSettled(*nodes_[0], consensus::RequestId(c)));
  // C settled (fee 20, from the 30 not pending withdrawal): 10 left, and C no longer reserves
  // anything, so D (worst case 10) fits exactly.
  EXPECT_EQ(admin_->EscrowBalance(client_.address()).value(), Uint256(1'000'000 - 20));
  const ConsensusRequest d = Request(3, 4, /*max_tokens=*/7);
  accepted = entry.Submit(d, Sign(d));
  ASSERT_TRUE(accepted.ok()) << accepted.status();
  RunToEnd(**accepted);
  EXPECT_TRUE((*accepted)->outcome().status.ok()) << (*accepted)->outcome().status;
}

TEST_F(PeerTest, EntryRestartResumesTheJournaledRoundAndSettlesOnce) {
  Build(Net(3));
  ASSERT_FALSE(HasFatalFailure());
  const ConsensusRequest r = Request(3, 11, 300);  // long enough to stop the entry mid-way
  auto handle = nodes_[0]->consensus->Submit(r, Sign(r));
  ASSERT_TRUE(handle.ok()) << handle.status();
  engine::StreamEvent ev;
  while ((*handle)->Next(&ev, milliseconds(100)) != RoundHandle::Wait::kToken) {
  }
  // The entry goes down mid-round: the round ends without a certificate, the request stays
  // journaled.
  TestNode& entry = *nodes_[0];
  entry.Stop();
  handle->reset();
  const auto record = entry.journal->GetRequest(consensus::RequestId(r));
  ASSERT_TRUE(record.ok());
  EXPECT_NE(record->state, journal::RequestState::kCertified);
  EXPECT_FALSE(admin_->IsSettled(consensus::RequestId(r)).value());

  // Restart (same journal and key, new port).
  Restart(entry);
  ASSERT_FALSE(HasFatalFailure());
  EXPECT_EQ(entry.consensus->ResumeJournaled().value(), 1);
  ASSERT_TRUE(WaitSettled(consensus::RequestId(r)));
  // Exactly once: the fee (3 + 300 tokens) left the escrow once.
  EXPECT_EQ(admin_->EscrowBalance(client_.address()).value(), Uint256(1'000'000 - 303));
  // A second restart finds nothing to resume.
  EXPECT_EQ(entry.consensus->ResumeJournaled().value(), 0);
}

// A restarted entry takes back the nonce claim and the escrow reservation of the round it
// resumes: the same nonce is still in use, and the reservation still counts against the escrow.
TEST_F(PeerTest, RestartedEntryKeepsTheClaimsOfTheRoundsItResumes) {
  // 3 nodes, n = 3: no backups, so a stopped member keeps a round running until it fails.
  Build(Net(3, 3'000));
  ASSERT_FALSE(HasFatalFailure());
  ASSERT_TRUE(admin_->RequestEscrowWithdrawal(client_.address(), Uint256(1'000'000 - 30)).ok());
  TestNode& gone = *nodes_[1];
  gone.Stop();
  TestNode& entry = *nodes_[0];
  const ConsensusRequest a = Request(3, 21, /*max_tokens=*/8);  // worst case 11
  auto running = entry.consensus->Submit(a, Sign(a));
  ASSERT_TRUE(running.ok()) << running.status();
  entry.Stop();  // mid-round: the request stays journaled, unfinished
  running->reset();
  Restart(entry);
  ASSERT_FALSE(HasFatalFailure());
  ASSERT_EQ(entry.consensus->ResumeJournaled().value(), 1);
  // The resumed round waits for the stopped member (3 s): meanwhile its claim holds.
  const ConsensusRequest same_nonce = Request(3, 21, /*max_tokens=*/9);
  auto refused = entry.consensus->Submit(same_nonce, Sign(same_nonce));
  EXPECT_TRUE(absl::IsAlreadyExists(refused.status())) << refused.status();
  const ConsensusRequest c = Request(3, 22, /*max_tokens=*/17);  // worst case 20: 11 + 20 > 30
  refused = entry.consensus->Submit(c, Sign(c));
  EXPECT_TRUE(absl::IsFailedPrecondition(refused.status())) << refused.status();
  EXPECT_NE(refused.status().message().find("less 11 reserved for 1 unsettled request(s)"),
            std::string::npos)
      << refused.status();
}

TEST_F(PeerTest, PeersTalkOverTlsAndRefuseAnUntrustedCertificate) {
  const test::TestCerts certs = test::MakeTestCerts(dir_ / "pki", "atoma-test-ca");
  ASSERT_FALSE(certs.ca.empty());
  NetworkOptions o = Net(3, 700);
  o.tls_cert = certs.cert;
  o.tls_key = certs.key;
  o.tls_roots = certs.ca;
  Build(o);
  ASSERT_FALSE(HasFatalFailure());
  const ConsensusRequest r = Request(3, 41);
  auto handle = nodes_[0]->consensus->Submit(r, Sign(r));
  ASSERT_TRUE(handle.ok()) << handle.status();
  RunToEnd(**handle);
  ASSERT_TRUE((*handle)->outcome().status.ok()) << (*handle)->outcome().status;
  EXPECT_TRUE(consensus::VerifyCertificate((*handle)->outcome().certificate,
                                           (*handle)->outcome().output, Context(epoch_))
                  .ok());

  // An entry that trusts another CA cannot reach the members: no certificate.
  TestNode& entry = *nodes_[0];
  options_.tls_roots = test::MakeTestCerts(dir_ / "other-pki", "other-ca").ca;
  Restart(entry);
  ASSERT_FALSE(HasFatalFailure());
  const ConsensusRequest r2 = Request(3, 42);
  auto refused = entry.consensus->Submit(r2, Sign(r2));
  ASSERT_TRUE(refused.ok()) << refused.status();
  RunToEnd(**refused);
  EXPECT_TRUE(absl::IsUnavailable((*refused)->outcome().status)) << (*refused)->outcome().status;
  EXPECT_GT(entry.consensus->stats().peer_call_errors, 0u);
}

// A lazy member: it computes nothing. It waits for an honest member's broadcast attestation,
// copies its C, token counts and Merkle root, and signs them with a made-up p_i.
class LazyPeer final : public v1::Peer::Service {
 public:
  LazyPeer(const crypto::PrivateKey& key, consensus::Domain domain) : key_(key), domain_(domain) {}

  grpc::Status Attest(grpc::ServerContext*, const v1::SignedMessage* in,
                      v1::AttestResponse* out) override {
    v1::PeerMessage m;
    m.ParseFromString(in->body());
    const std::string& b = m.attest().attestation();
    auto a = consensus::DecodeAttestation(
        std::span(reinterpret_cast<const uint8_t*>(b.data()), b.size()));
    if (a.ok()) {
      std::lock_guard lock(mu_);
      seen_.emplace(a->request_id, *a);
      cv_.notify_all();
    }
    out->set_accepted(true);
    return grpc::Status::OK;
  }

  grpc::Status Execute(grpc::ServerContext*, const v1::SignedMessage* in,
                       grpc::ServerWriter<v1::ExecuteResponse>* writer) override {
    v1::PeerMessage m;
    m.ParseFromString(in->body());
    const std::string& rb = m.execute().request();
    consensus::Decoder d(std::span(reinterpret_cast<const uint8_t*>(rb.data()), rb.size()));
    const ConsensusRequest r = consensus::DecodeRequest(d).value();
    const Hash256 id = consensus::RequestId(r);
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, std::chrono::seconds(10), [&] { return seen_.count(id) != 0; })) {
      return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "nothing to copy");
    }
    Attestation copy = seen_.at(id);
    copy.proof = crypto::Sha256Of(std::string_view("made up"));
    copy.member = key_.address();
    copy.signature = key_.Sign(consensus::AttestationDigest(copy));
    ++copied_;
    v1::ExecuteResponse response;
    const std::vector<uint8_t> bytes = consensus::EncodeAttestation(copy);
    response.set_attestation(bytes.data(), bytes.size());
    writer->Write(response);
    return grpc::Status::OK;
  }

  int copied() {
    std::lock_guard lock(mu_);
    return copied_;
  }

 private:
  const crypto::PrivateKey& key_;
  const consensus::Domain domain_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<Hash256, Attestation> seen_;
  int copied_ = 0;
};

TEST_F(PeerTest, LazyMemberThatCopiesCIsCaughtAndSlashed) {
  Build(Net(8));
  ASSERT_FALSE(HasFatalFailure());
  const Address entry = nodes_[0]->address();
  const uint64_t nonce = NonceWhere(3, [&](const consensus::CommitteeDraws& d) {
    return d.committee[0] == entry && d.referees.size() == 2;
  });
  const ConsensusRequest r = Request(3, nonce);
  const consensus::CommitteeDraws draws = Draws(r);
  // Replace member 2 by a lazy peer on a new port.
  TestNode* lazy = NodeOf(draws.committee[2]);
  lazy->Stop();
  LazyPeer service(*lazy->key, admin_->GetParams().value().domain);
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_TRUE(
      admin_->UpdateNode(lazy->address(), absl::StrCat("127.0.0.1:", port), {{Digest(), Echelon()}})
          .ok());
  const ledger::StakeInfo before = admin_->GetStake(lazy->address()).value();

  auto handle = nodes_[0]->consensus->Submit(r, Sign(r));
  ASSERT_TRUE(handle.ok()) << handle.status();
  RunToEnd(**handle);
  const RoundOutcome& outcome = (*handle)->outcome();
  EXPECT_EQ(service.copied(), 1);
  EXPECT_TRUE(absl::IsAborted(outcome.status)) << outcome.status;
  EXPECT_LT(admin_->GetStake(lazy->address()).value().bonded, before.bonded);
  EXPECT_EQ(admin_->RewardBalance(lazy->address()).value(), Uint256(0));
  EXPECT_GT(admin_->RewardBalance(entry).value(), Uint256(0));
  server->Shutdown(std::chrono::system_clock::now());
}

// --- The Peer service refuses what it must (raw calls with a stub) ---

class PeerServiceTest : public PeerTest {
 protected:
  void SetUp() override {
    PeerTest::SetUp();
    Build(Net(3));
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", nodes_[1]->port),
                                   grpc::InsecureChannelCredentials());
    stub_ = v1::Peer::NewStub(channel_);
  }

  v1::SignedMessage Seal(const v1::PeerMessage& m, const crypto::PrivateKey& key,
                         consensus::Domain domain) {
    v1::SignedMessage out;
    m.SerializeToString(out.mutable_body());
    consensus::Encoder e;
    e.U64(domain.chain_id).Addr(domain.ledger).Bytes(out.body());
    const crypto::Signature sig = key.Sign(consensus::TaggedHash("atoma/peer", e));
    out.set_sender(key.address().data(), 20);
    out.set_signature(sig.data(), 65);
    return out;
  }
  v1::PeerMessage ExecuteMessage(const ConsensusRequest& r, const std::vector<Address>& committee,
                                 int64_t sent_ms) {
    v1::PeerMessage m;
    m.set_method("Execute");
    m.set_sent_unix_ms(static_cast<uint64_t>(sent_ms));
    consensus::Encoder e;
    consensus::EncodeRequest(r, e);
    m.mutable_execute()->set_request(e.bytes().data(), e.bytes().size());
    const crypto::Signature sig = Sign(r);
    m.mutable_execute()->set_client_signature(sig.data(), sig.size());
    for (const Address& a : committee) m.mutable_execute()->add_committee(a.data(), 20);
    return m;
  }
  grpc::Status CallExecute(const v1::SignedMessage& m) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    auto reader = stub_->Execute(&context, m);
    v1::ExecuteResponse response;
    while (reader->Read(&response)) {
    }
    return reader->Finish();
  }
  static int64_t NowMs() {
    return std::chrono::duration_cast<milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  uint64_t Rejected(const std::string& reason) {
    const PeerStats s = nodes_[1]->consensus->stats();
    auto it = s.rejected.find(reason);
    return it == s.rejected.end() ? 0 : it->second;
  }

  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Peer::Stub> stub_;
};

TEST_F(PeerServiceTest, ExecutesForARegisteredPeerAndRefusesForgeriesAndReplays) {
  ASSERT_FALSE(HasFatalFailure());
  const ConsensusRequest r = Request(3, 21);
  const std::vector<Address> committee = Draws(r).committee;
  const consensus::Domain domain = admin_->GetParams().value().domain;
  const crypto::PrivateKey& peer = *nodes_[0]->key;

  // A well-formed call from a registered peer: executes and attests.
  EXPECT_TRUE(CallExecute(Seal(ExecuteMessage(r, committee, NowMs()), peer, domain)).ok());

  // A drawn node may not see the output before the round is decided.
  v1::PeerMessage stream = ExecuteMessage(r, committee, NowMs());
  stream.mutable_execute()->set_stream_tokens(true);
  EXPECT_EQ(CallExecute(Seal(stream, peer, domain)).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Rejected("output_not_released"), 1u);

  // Forged envelope signature.
  v1::SignedMessage forged = Seal(ExecuteMessage(r, committee, NowMs()), peer, domain);
  (*forged.mutable_signature())[3] ^= 1;
  EXPECT_EQ(CallExecute(forged).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Rejected("bad_signature"), 1u);

  // Signed for another ledger (domain): the signature does not recover to the sender here.
  consensus::Domain other = domain;
  other.chain_id += 1;
  EXPECT_EQ(CallExecute(Seal(ExecuteMessage(r, committee, NowMs()), peer, other)).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Rejected("bad_signature"), 2u);

  // A sender that is not registered.
  const crypto::PrivateKey stranger =
      crypto::PrivateKey::FromHex(std::string(63, '0') + "5").value();
  EXPECT_EQ(CallExecute(Seal(ExecuteMessage(r, committee, NowMs()), stranger, domain)).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Rejected("unregistered_sender"), 1u);

  // A replay of an old message (outside the replay window).
  EXPECT_EQ(CallExecute(Seal(ExecuteMessage(r, committee, NowMs() - 3'600'000), peer, domain))
                .error_code(),
            grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_EQ(Rejected("stale_message"), 1u);

  // A body signed for another method.
  v1::PeerMessage wrong = ExecuteMessage(r, committee, NowMs());
  wrong.set_method("Attest");
  EXPECT_EQ(CallExecute(Seal(wrong, peer, domain)).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Rejected("wrong_method"), 1u);

  // A committee that is not the draw.
  std::vector<Address> fake = committee;
  std::swap(fake[0], fake[1]);
  EXPECT_EQ(CallExecute(Seal(ExecuteMessage(r, fake, NowMs()), peer, domain)).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(Rejected("not_drawn"), 1u);

  // A request from an old epoch (two epochs later it is neither current nor previous).
  ASSERT_TRUE(admin_->AdvanceEpoch().ok());
  ASSERT_TRUE(admin_->AdvanceEpoch().ok());
  EXPECT_EQ(CallExecute(Seal(ExecuteMessage(Request(3, 22), committee, NowMs()), peer, domain))
                .error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(Rejected("stale_epoch"), 1u);
}

TEST_F(PeerServiceTest, PushedEquivocationIsReportedAndSlashed) {
  ASSERT_FALSE(HasFatalFailure());
  const ConsensusRequest r = Request(3, 31);
  const consensus::CommitteeDraws draws = Draws(r);
  const consensus::Domain domain = admin_->GetParams().value().domain;
  // A member other than the receiver (a node does not report itself).
  TestNode* member =
      NodeOf(draws.committee[0] != nodes_[1]->address() ? draws.committee[0] : draws.committee[1]);
  consensus::ConsensusOutput one{{1, 2, 3}, consensus::FinishReason::kLength};
  consensus::ConsensusOutput two{{1, 2, 4}, consensus::FinishReason::kLength};
  const Hash256 id = consensus::RequestId(r);
  const Attestation a = consensus::MakeAttestation(domain, id, Echelon(), r.epoch, draws.committee,
                                                   one, 3, *member->key)
                            .value();
  const Attestation b = consensus::MakeAttestation(domain, id, Echelon(), r.epoch, draws.committee,
                                                   two, 3, *member->key)
                            .value();
  auto push = [&](const Attestation& att) {
    v1::PeerMessage m;
    m.set_method("Attest");
    m.set_sent_unix_ms(static_cast<uint64_t>(NowMs()));
    const std::vector<uint8_t> bytes = consensus::EncodeAttestation(att);
    m.mutable_attest()->set_attestation(bytes.data(), bytes.size());
    grpc::ClientContext context;
    v1::AttestResponse response;
    EXPECT_TRUE(stub_->Attest(&context, Seal(m, *member->key, domain), &response).ok());
    return response;
  };
  EXPECT_TRUE(push(a).accepted());
  EXPECT_FALSE(push(a).accepted());  // duplicate
  const v1::AttestResponse second = push(b);
  EXPECT_FALSE(second.accepted());
  EXPECT_EQ(second.reason(), "equivocating");
  const auto slashings = admin_->ListSlashings(0).value();
  ASSERT_EQ(slashings.size(), 1u);
  EXPECT_EQ(slashings[0].offender, member->address());
  EXPECT_EQ(slashings[0].reporter, nodes_[1]->address());
  EXPECT_EQ(nodes_[1]->consensus->stats().equivocations_reported, 1u);
  // A forged attestation (signature flipped) is refused and counted.
  Attestation bad = a;
  bad.signature[10] ^= 1;
  EXPECT_FALSE(push(bad).accepted());
  EXPECT_EQ(Rejected("invalid"), 1u);
}

TEST_F(PeerServiceTest, MembersCoSignOnlyTheirOwnAttestations) {
  ASSERT_FALSE(HasFatalFailure());
  const consensus::Domain domain = admin_->GetParams().value().domain;
  const crypto::PrivateKey& self = *nodes_[0]->key;
  const crypto::PrivateKey& member = *nodes_[1]->key;
  const crypto::PrivateKey& other = *nodes_[2]->key;
  auto entries_of = [](const crypto::PrivateKey& key, uint8_t first) {
    std::vector<consensus::CosignEntry> out;
    for (uint8_t b = first; b < first + 3; ++b) {
      Hash256 digest;
      digest.fill(b);
      out.push_back({digest, key.Sign(digest)});
    }
    return out;
  };
  ledger::Cosigner& cosigner = nodes_[0]->consensus->cosigner();

  // A remote member (over Peer.Cosign) and this node itself.
  std::vector<ledger::Cosigner::Request> requests = {{member.address(), entries_of(member, 1)},
                                                     {self.address(), entries_of(self, 7)}};
  std::vector<absl::StatusOr<crypto::Signature>> answers = cosigner.Cosign(requests);
  ASSERT_EQ(answers.size(), 2u);
  for (size_t i = 0; i < answers.size(); ++i) {
    ASSERT_TRUE(answers[i].ok()) << answers[i].status();
    EXPECT_TRUE(
        consensus::VerifyCosignature(domain, requests[i].member, requests[i].entries, *answers[i])
            .ok());
  }
  EXPECT_EQ(nodes_[1]->consensus->stats().cosignatures_signed, 1u);

  // An entry the member never signed: refused, named, counted; nothing co-signed.
  std::vector<consensus::CosignEntry> mixed = entries_of(member, 20);
  mixed[1] = entries_of(other, 30)[0];
  answers = cosigner.Cosign(std::vector<ledger::Cosigner::Request>{{member.address(), mixed}});
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(answers[0].status().code(), absl::StatusCode::kPermissionDenied) << answers[0].status();
  EXPECT_NE(answers[0].status().message().find("entry 1"), std::string::npos)
      << answers[0].status();
  EXPECT_EQ(Rejected("not_own_attestation"), 1u);
  EXPECT_EQ(nodes_[1]->consensus->stats().cosignatures_signed, 1u);

  // Malformed calls: digests without signatures, a short digest.
  auto call = [&](const v1::PeerMessage& m) {
    grpc::ClientContext context;
    v1::CosignResponse response;
    return stub_->Cosign(&context, Seal(m, self, domain), &response).error_code();
  };
  v1::PeerMessage m;
  m.set_method("Cosign");
  m.set_sent_unix_ms(static_cast<uint64_t>(NowMs()));
  m.mutable_cosign()->add_digests(std::string(32, 'a'));
  EXPECT_EQ(call(m), grpc::StatusCode::INVALID_ARGUMENT);
  m.mutable_cosign()->add_signatures(std::string(65, 'b'));
  m.mutable_cosign()->set_digests(0, std::string(31, 'a'));
  EXPECT_EQ(call(m), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Rejected("malformed"), 2u);
  // Signed for another method.
  m.set_method("Attest");
  EXPECT_EQ(call(m), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Rejected("wrong_method"), 1u);

  // After Shutdown the runtime co-signs nothing (the batch then settles with per-slot
  // signatures).
  nodes_[0]->consensus->Shutdown(milliseconds(0));
  answers = cosigner.Cosign(requests);
  EXPECT_EQ(answers[0].status().code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace atoma::peer
