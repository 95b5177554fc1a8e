// Test-only, shared by the ledger and journal tests: a ledger with registered, staked nodes
// serving one echelon, a funded client with its own key, and honest certificates made with the
// nodes' real keys against the ledger's own epoch seed and frozen snapshot, authorized by the
// client's signature. Sampling certificates (Honest) and cross-validation ones (XvHonest).
//
// The ledger is opened by a LedgerOpener: the embedded backend by default (OpenEmbedded); the
// ledger conformance suite (tests/unit/ledger/backends.h) passes the EVM backend's opener too.
// Every address that acts in a mutating call needs a key on the EVM backend (the actor is the
// transaction's sender): the fixture's node keys, its client key and the Actor(i) keys are the
// signers it hands to the opener.
//
// Errors: Create ASSERTs (check HasFatalFailure); the other helpers ADD_FAILURE on misuse.
// Thread-safety: none (one test thread).
#pragma once

#include <algorithm>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "atoma/consensus/attestation.h"
#include "atoma/consensus/committee.h"
#include "atoma/consensus/request.h"
#include "atoma/consensus/xv.h"
#include "atoma/crypto/sha256.h"
#include "atoma/ledger/ledger.h"
#include "gtest/gtest.h"
#include "testing/keys.h"

namespace atoma::test {

using ledger::Address;

// The ledger backends the conformance suite runs on.
enum class Backend { kEmbedded, kEvm };
// "Embedded" / "Evm": the suffix of parameterized test names.
inline std::string BackendName(Backend backend) {
  return backend == Backend::kEmbedded ? "Embedded" : "Evm";
}

// gtest prints parameters with PrintTo (found by ADL): "Embedded" rather than raw bytes.
inline void PrintTo(Backend backend, std::ostream* os) { *os << BackendName(backend); }

// Test actors: Actor(i) is the address of ActorKey(i), secret 0xa0..0 followed by i + 1 in hex
// (i < 4095; apart from the node keys, whose first digit is 'b'..'e', and the client's 0x..c1).
// Openers give the EVM backend the keys of Actor(0) .. Actor(kActors - 1).
inline constexpr uint32_t kActors = 16;
inline crypto::PrivateKey ActorKey(uint32_t i) {
  return crypto::PrivateKey::FromHex(
             absl::StrCat("a", std::string(60, '0'), absl::Hex(i + 1, absl::kZeroPad3)))
      .value();
}
inline Address Actor(uint32_t i) { return ActorKey(i).address(); }

// A ledger opened by a LedgerOpener, and how to open another client of the same ledger (the
// embedded backend reopens the file; the EVM backend connects to the same contract).
struct OpenedLedger {
  std::unique_ptr<ledger::LedgerClient> client;
  std::function<absl::StatusOr<std::unique_ptr<ledger::LedgerClient>>()> reopen;
};

// Opens a new ledger of some backend. `path` is where an embedded ledger's file goes; `options`
// are the embedded ledger's (another backend maps the parameters it has: unbonding epochs, epoch
// length, fee per token, slash and reporter shares); `signers` are the keys the ledger must be
// able to act as (ignored by the embedded backend).
using LedgerOpener = std::function<absl::StatusOr<OpenedLedger>(
    const std::filesystem::path& path, const ledger::EmbeddedLedgerOptions& options,
    const std::vector<const crypto::PrivateKey*>& signers)>;

// The embedded backend's opener: OpenEmbeddedLedger(path, options); reopen opens the file again
// with default options (the file keeps its parameters).
inline absl::StatusOr<OpenedLedger> OpenEmbedded(
    const std::filesystem::path& path, const ledger::EmbeddedLedgerOptions& options,
    const std::vector<const crypto::PrivateKey*>& /*signers*/) {
  absl::StatusOr<std::unique_ptr<ledger::LedgerClient>> client =
      ledger::OpenEmbeddedLedger(path, options);
  if (!client.ok()) return client.status();
  return OpenedLedger{std::move(*client), [path] { return ledger::OpenEmbeddedLedger(path); }};
}

// What Create sets up. The defaults are the journal tests'; the settlement tests change them.
struct LedgerSetup {
  size_t nodes = 5;
  char key_prefix = 'c';  // first hex digit of every node key (keys end in i + 1, in hex)
  ledger::EmbeddedLedgerOptions options;
  uint64_t escrow = 100'000;  // the client's deposit
  LedgerOpener open = OpenEmbedded;
};

class LedgerFixture {
 public:
  static constexpr uint64_t kCommittee = 3;

  // Creates the ledger at `path` and advances it to epoch 1, whose snapshot holds the nodes.
  // ASSERTs inside (call it from SetUp, then check HasFatalFailure).
  void Create(const std::filesystem::path& path, const LedgerSetup& setup = {}) {
    model_ = crypto::Sha256Of(std::string_view("model"));
    echelon_ = crypto::Sha256Of(std::string_view("model/fingerprint"));
    for (size_t i = 0; i < setup.nodes; ++i) {
      std::string hex(64, '0');
      hex[0] = setup.key_prefix;
      // The last two hex digits are i + 1 (keys differ in the last digit for up to 9 nodes).
      constexpr char kDigits[] = "0123456789abcdef";
      hex[62] = kDigits[((i + 1) / 16) % 16];
      hex[63] = kDigits[(i + 1) % 16];
      keys_.push_back(crypto::PrivateKey::FromHex(hex).value());
    }
    open_ = setup.open;
    absl::StatusOr<OpenedLedger> opened = open_(path, setup.options, Signers());
    ASSERT_TRUE(opened.ok()) << opened.status();
    ledger_ = std::move(opened->client);
    reopen_ = std::move(opened->reopen);
    absl::StatusOr<ledger::Params> params = ledger_->GetParams();
    ASSERT_TRUE(params.ok()) << params.status();
    params_ = *params;
    for (size_t i = 0; i < setup.nodes; ++i) {
      const Address& a = keys_[i].address();
      absl::Status status =
          ledger_->RegisterNode(a, absl::StrCat("node", i, ":7000"), {{model_, echelon_}});
      ASSERT_TRUE(status.ok()) << status;
      status = ledger_->Stake(a, ledger::Amount(10'000 + 1'000 * i));
      ASSERT_TRUE(status.ok()) << status;
    }
    client_ = client_key_.address();
    const absl::Status deposit = ledger_->DepositEscrow(client_, ledger::Amount(setup.escrow));
    ASSERT_TRUE(deposit.ok()) << deposit;
    absl::StatusOr<ledger::Epoch> epoch = ledger_->AdvanceEpoch();
    ASSERT_TRUE(epoch.ok()) << epoch.status();
    epoch_ = *epoch;
  }

  consensus::ConsensusRequest Request(uint64_t nonce, uint64_t max_fee = 1'000) const {
    consensus::ConsensusRequest r;
    r.model_digest = model_;
    r.prompt_token_ids = {1, 15043, 3186, 29892};
    r.max_tokens = 16;
    r.security = {consensus::SecurityMode::kSampling, kCommittee, 0, 0, {}};
    r.max_fee = ledger::Amount(max_fee);
    r.client = client_;
    r.client_nonce = nonce;
    r.epoch = epoch_.number;
    return r;
  }

  static consensus::ConsensusOutput Output(uint32_t first = 100) {
    consensus::ConsensusOutput o;
    for (uint32_t i = 0; i < 16; ++i) o.token_ids.push_back(first + i);
    o.finish_reason = consensus::FinishReason::kLength;
    return o;
  }

  // The client's authorization of `r` for this ledger (consensus::ClientRequestDigest).
  crypto::Signature ClientSign(const consensus::ConsensusRequest& r) const {
    return client_key_.Sign(
        consensus::ClientRequestDigest(params_.domain, consensus::RequestId(r)));
  }

  const crypto::PrivateKey& KeyOf(const Address& a) const { return test::KeyFor(keys_, a); }

  std::vector<Address> CommitteeOf(const consensus::ConsensusRequest& r) const {
    std::vector<consensus::Candidate> registry;
    const std::vector<ledger::Candidate> snapshot =
        ledger_->EchelonSnapshot(epoch_.number, echelon_).value();
    for (const ledger::Candidate& c : snapshot) registry.push_back({c.address, c.stake});
    return consensus::SelectCommittee(epoch_.seed, consensus::RequestId(r), registry, kCommittee, 0,
                                      0)
        .value()
        .committee;
  }

  consensus::Attestation Attest(const Address& member, const consensus::ConsensusRequest& r,
                                const consensus::ConsensusOutput& output) const {
    return consensus::MakeAttestation(params_.domain, consensus::RequestId(r), echelon_,
                                      epoch_.number, CommitteeOf(r), output,
                                      r.prompt_token_ids.size(), KeyOf(member))
        .value();
  }

  // The honest certificate: every member attests `output` with its own key.
  ledger::SettlementItem Honest(const consensus::ConsensusRequest& r,
                                const consensus::ConsensusOutput& output) const {
    ledger::SettlementItem item;
    item.output = output;
    item.certificate.request = r;
    item.certificate.client_signature = ClientSign(r);
    item.certificate.committee = CommitteeOf(r);
    for (const Address& m : item.certificate.committee) {
      item.certificate.attestations.push_back(Attest(m, r, output));
    }
    item.certificate.commitment = item.certificate.attestations[0].commitment;
    return item;
  }

  // --- Cross-validation (consensus/xv.h) ---

  // A cross_validation request and the salt its salt_hash commits to.
  struct XvCase {
    consensus::ConsensusRequest request;
    consensus::XvSalt salt{};
  };

  // SelectCommittee(seed, id, snapshot, 1, BackupCount(1), XvRefereeDraws(k)): draw 0 the
  // executor, then its backup, then (SplitXvDraws) the k validators and the dispute referees.
  consensus::CommitteeDraws XvDrawsOf(const consensus::ConsensusRequest& r) const {
    std::vector<consensus::Candidate> registry;
    const std::vector<ledger::Candidate> snapshot =
        ledger_->EchelonSnapshot(epoch_.number, echelon_).value();
    for (const ledger::Candidate& c : snapshot) registry.push_back({c.address, c.stake});
    return consensus::SelectCommittee(epoch_.seed, consensus::RequestId(r), registry, 1,
                                      consensus::BackupCount(1),
                                      consensus::XvRefereeDraws(r.security.k))
        .value();
  }
  consensus::XvDraws XvRolesOf(const consensus::ConsensusRequest& r) const {
    return consensus::SplitXvDraws(XvDrawsOf(r), r.security.k);
  }

  // `signer`'s attestation of `output` with C over `committee`: a member's (MakeAttestation) when
  // it is in `committee`, else a validator's or referee's (p for its own address).
  consensus::Attestation XvAttest(const Address& signer, const consensus::ConsensusRequest& r,
                                  const std::vector<Address>& committee,
                                  const consensus::ConsensusOutput& output) const {
    const bool member = std::find(committee.begin(), committee.end(), signer) != committee.end();
    const consensus::Hash256 id = consensus::RequestId(r);
    return (member
                ? consensus::MakeAttestation(params_.domain, id, echelon_, epoch_.number, committee,
                                             output, r.prompt_token_ids.size(), KeyOf(signer))
                : consensus::MakeRefereeAttestation(params_.domain, id, echelon_, epoch_.number,
                                                    committee, output, r.prompt_token_ids.size(),
                                                    KeyOf(signer)))
        .value();
  }

  // A cross_validation{p_micro, k} request whose coin, over the honest executor's attestation of
  // `output`, is `drawn` (salts are tried until it is; p_micro must allow it).
  XvCase XvRequest(uint64_t nonce, bool drawn, uint64_t k = 2, uint64_t p_micro = 500'000,
                   uint64_t max_fee = 1'000,
                   const consensus::ConsensusOutput& output = Output()) const {
    for (int i = 0; i < 256; ++i) {
      XvCase c;
      c.salt.fill(static_cast<uint8_t>(nonce));
      c.salt[0] = static_cast<uint8_t>(i);
      c.request = Request(nonce, max_fee);
      c.request.security = {consensus::SecurityMode::kCrossValidation, 0, p_micro, k,
                            consensus::XvSaltHash(c.salt)};
      const std::vector<Address> executor = {XvDrawsOf(c.request).committee[0]};
      const consensus::Attestation a = XvAttest(executor[0], c.request, executor, output);
      if (consensus::XvCheckDrawn(c.salt, a, p_micro) == drawn) return c;
    }
    ADD_FAILURE() << "no salt gives a coin that is " << (drawn ? "drawn" : "not drawn");
    return {};
  }

  // The honest cross-validation item: the executor (draw 0) attests `output`; the salt when
  // `reveal`; then, when the coin is drawn, every validator's attestation in draw order.
  ledger::SettlementItem XvHonest(const XvCase& c, bool reveal,
                                  const consensus::ConsensusOutput& output = Output()) const {
    consensus::XvCertificate x;
    x.base.request = c.request;
    x.base.client_signature = ClientSign(c.request);
    x.base.committee = {XvDrawsOf(c.request).committee[0]};
    x.base.attestations = {XvAttest(x.base.committee[0], c.request, x.base.committee, output)};
    x.base.commitment = x.base.attestations[0].commitment;
    if (reveal) {
      x.salt = c.salt;
      if (consensus::XvCheckDrawn(c.salt, x.base.attestations[0], c.request.security.p_micro)) {
        for (const Address& v : XvRolesOf(c.request).validators) {
          x.validators.push_back(XvAttest(v, c.request, x.base.committee, output));
        }
      }
    }
    ledger::SettlementItem item;
    item.certificate = x.base;
    item.output = output;
    item.xv = std::move(x);
    return item;
  }

  ledger::Amount Escrow() const { return ledger_->EscrowBalance(client_).value(); }

  // The node keys and the client key: what an opener must be able to sign as.
  std::vector<const crypto::PrivateKey*> Signers() const {
    std::vector<const crypto::PrivateKey*> signers = {&client_key_};
    for (const crypto::PrivateKey& k : keys_) signers.push_back(&k);
    return signers;
  }
  // Another new ledger of the same backend as Create's (with the same signers).
  absl::StatusOr<std::unique_ptr<ledger::LedgerClient>> OpenAnother(
      const std::filesystem::path& path, const ledger::EmbeddedLedgerOptions& options = {}) const {
    absl::StatusOr<OpenedLedger> opened = open_(path, options, Signers());
    if (!opened.ok()) return opened.status();
    return std::move(opened->client);
  }
  // Another client of Create's ledger (the state must be the ledger's, not the client's).
  absl::StatusOr<std::unique_ptr<ledger::LedgerClient>> Reopen() const { return reopen_(); }

  std::unique_ptr<ledger::LedgerClient> ledger_;
  ledger::Params params_;
  crypto::Hash256 model_{};
  crypto::Hash256 echelon_{};
  std::vector<crypto::PrivateKey> keys_;
  const crypto::PrivateKey client_key_ =
      crypto::PrivateKey::FromHex(std::string(62, '0') + "c1").value();
  Address client_{};  // client_key_'s address
  ledger::Epoch epoch_;
  LedgerOpener open_;
  std::function<absl::StatusOr<std::unique_ptr<ledger::LedgerClient>>()> reopen_;
};

}  // namespace atoma::test
