// Test-only, for the EVM ledger backend's tests: a small network on any LedgerClient — nodes with
// real keys registered for one echelon and staked, a funded client, epoch 1 opened — and honest or
// tampered certificates built against the ledger's own seed and snapshot. The same World runs on
// the embedded backend and on the EVM backend, so a test can compare their answers item by item.
// (A trimmed copy of tests/unit/testing/ledger_fixture.h, which is being generalized elsewhere.)
//
// Errors: Setup returns the first failing status; the builders ADD_FAILURE on misuse.
// Thread-safety: none (one test thread).
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "atoma/common/status.h"
#include "atoma/consensus/attestation.h"
#include "atoma/consensus/committee.h"
#include "atoma/consensus/request.h"
#include "atoma/crypto/keys.h"
#include "atoma/crypto/sha256.h"
#include "atoma/ledger/ledger.h"
#include "gtest/gtest.h"
#include "testing/keys.h"

namespace atoma::test {

using ledger::Address;

// Node i's key: secret "b0..0" followed by i + 1 (two hex digits). Deterministic, so a test can
// name the same nodes on two backends.
inline crypto::PrivateKey WorldNodeKey(size_t i) {
  constexpr char kDigits[] = "0123456789abcdef";
  std::string hex(64, '0');
  hex[0] = 'b';
  hex[62] = kDigits[((i + 1) / 16) % 16];
  hex[63] = kDigits[(i + 1) % 16];
  return crypto::PrivateKey::FromHex(hex).value();
}
inline crypto::PrivateKey WorldClientKey() {
  return crypto::PrivateKey::FromHex(std::string(62, '0') + "c1").value();
}
// An address no World hands a key to (for PERMISSION_DENIED tests).
inline crypto::PrivateKey StrangerKey() {
  return crypto::PrivateKey::FromHex(std::string(62, '0') + "d7").value();
}

class World {
 public:
  static constexpr size_t kNodes = 5;
  static constexpr uint64_t kCommittee = 3;

  World() {
    for (size_t i = 0; i < kNodes; ++i) node_keys_.push_back(WorldNodeKey(i));
    model_ = crypto::Sha256Of(std::string_view("model"));
    echelon_ = crypto::Sha256Of(std::string_view("model/fingerprint"));
  }

  // Every key the ledger must be able to act as: the nodes, then the client.
  std::vector<crypto::PrivateKey> Keys() const {
    std::vector<crypto::PrivateKey> keys;
    for (size_t i = 0; i < kNodes; ++i) keys.push_back(WorldNodeKey(i));
    keys.push_back(WorldClientKey());
    return keys;
  }

  // Registers and stakes the nodes (10'000 + 1'000 i), deposits `escrow` for the client and
  // opens epoch 1.
  absl::Status Setup(ledger::LedgerClient* ledger, uint64_t escrow = 100'000) {
    ledger_ = ledger;
    ASSIGN_OR_RETURN(params_, ledger_->GetParams());
    for (size_t i = 0; i < kNodes; ++i) {
      const Address a = node_keys_[i].address();
      RETURN_IF_ERROR(
          ledger_->RegisterNode(a, absl::StrCat("node", i, ":7000"), {{model_, echelon_}}));
      RETURN_IF_ERROR(ledger_->Stake(a, ledger::Amount(10'000 + 1'000 * i)));
    }
    RETURN_IF_ERROR(ledger_->DepositEscrow(client(), ledger::Amount(escrow)));
    ASSIGN_OR_RETURN(epoch_, ledger_->AdvanceEpoch());
    return absl::OkStatus();
  }

  Address client() const { return client_key_.address(); }
  Address node(size_t i) const { return node_keys_[i].address(); }
  const crypto::PrivateKey& client_key() const { return client_key_; }
  const ledger::Params& params() const { return params_; }
  const ledger::Epoch& epoch() const { return epoch_; }
  const crypto::Hash256& echelon() const { return echelon_; }
  const crypto::Hash256& model() const { return model_; }

  consensus::ConsensusRequest Request(uint64_t nonce, uint64_t max_fee = 1'000,
                                      uint64_t n = kCommittee) const {
    consensus::ConsensusRequest r;
    r.model_digest = model_;
    r.prompt_token_ids = {1, 15043, 3186, 29892};
    r.max_tokens = 16;
    r.security = {consensus::SecurityMode::kSampling, n, 0, 0, {}};
    r.max_fee = ledger::Amount(max_fee);
    r.client = client();
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

  crypto::Signature ClientSign(const consensus::ConsensusRequest& r) const {
    return client_key_.Sign(
        consensus::ClientRequestDigest(params_.domain, consensus::RequestId(r)));
  }

  const crypto::PrivateKey& KeyOf(const Address& a) const { return test::KeyFor(node_keys_, a); }

  // SelectCommittee over the ledger's snapshot of epoch 1: committee, backups and referees.
  consensus::CommitteeDraws DrawsOf(const consensus::ConsensusRequest& r) const {
    std::vector<consensus::Candidate> registry;
    const std::vector<ledger::Candidate> snapshot =
        ledger_->EchelonSnapshot(epoch_.number, echelon_).value();
    for (const ledger::Candidate& c : snapshot) {
      registry.push_back({c.address, c.stake});
    }
    const uint64_t n = consensus::CommitteeSize(r.security);
    return consensus::SelectCommittee(epoch_.seed, consensus::RequestId(r), registry, n,
                                      consensus::BackupCount(n), consensus::RefereeCount(n))
        .value();
  }

  consensus::Attestation Attest(const Address& member, const consensus::ConsensusRequest& r,
                                const std::vector<Address>& committee,
                                const consensus::ConsensusOutput& output) const {
    return consensus::MakeAttestation(params_.domain, consensus::RequestId(r), echelon_,
                                      epoch_.number, committee, output, r.prompt_token_ids.size(),
                                      KeyOf(member))
        .value();
  }

  consensus::Attestation RefereeAttest(const Address& referee, const consensus::ConsensusRequest& r,
                                       const std::vector<Address>& committee,
                                       const consensus::ConsensusOutput& output) const {
    return consensus::MakeRefereeAttestation(params_.domain, consensus::RequestId(r), echelon_,
                                             epoch_.number, committee, output,
                                             r.prompt_token_ids.size(), KeyOf(referee))
        .value();
  }

  // The honest certificate: every member attests `output` with its own key.
  ledger::SettlementItem Honest(const consensus::ConsensusRequest& r,
                                const consensus::ConsensusOutput& output = Output()) const {
    ledger::SettlementItem item;
    item.output = output;
    item.certificate.request = r;
    item.certificate.client_signature = ClientSign(r);
    item.certificate.committee = DrawsOf(r).committee;
    for (const Address& m : item.certificate.committee) {
      item.certificate.attestations.push_back(Attest(m, r, item.certificate.committee, output));
    }
    item.certificate.commitment = item.certificate.attestations[0].commitment;
    return item;
  }

  ledger::Amount Escrow() const { return ledger_->EscrowBalance(client()).value(); }

 private:
  ledger::LedgerClient* ledger_ = nullptr;
  ledger::Params params_;
  crypto::Hash256 model_{};
  crypto::Hash256 echelon_{};
  std::vector<crypto::PrivateKey> node_keys_;
  crypto::PrivateKey client_key_ = WorldClientKey();
  ledger::Epoch epoch_;
};

}  // namespace atoma::test
