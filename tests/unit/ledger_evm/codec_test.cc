// The EVM backend's pure parts, without a chain: the packed calldata of settle and settleDispute
// read back field by field against docs/ledger_evm.md, the revert-reason and SettlementRejected
// mappings, and the transaction journal (record before broadcast, pending after a reopen, scoped
// by chain and contract).
#include "codec.h"

#include <filesystem>
#include <span>

#include "atoma/consensus/encoding.h"
#include "atoma/consensus/xv.h"
#include "atoma/evm/abi.h"
#include "atoma/evm/hex.h"
#include "atoma/evm/rpc.h"
#include "gtest/gtest.h"
#include "testing/temp_dir.h"
#include "tx_journal.h"
#include "tx_sender.h"

namespace atoma::ledger::evm_backend {
namespace {

using consensus::Attestation;

crypto::PrivateKey Key(char last) {
  return crypto::PrivateKey::FromHex(std::string(63, '0') + std::string(1, last)).value();
}

// Reads big-endian fields in order, failing the test when it runs out.
class Reader {
 public:
  explicit Reader(std::span<const uint8_t> bytes) : bytes_(bytes) {}
  uint64_t Int(size_t width) {
    uint64_t v = 0;
    for (size_t i = 0; i < width; ++i) v = (v << 8) | Byte();
    return v;
  }
  std::vector<uint8_t> Raw(size_t n) {
    std::vector<uint8_t> out;
    for (size_t i = 0; i < n; ++i) out.push_back(Byte());
    return out;
  }
  template <size_t N>
  std::array<uint8_t, N> Fixed() {
    std::array<uint8_t, N> out{};
    for (size_t i = 0; i < N; ++i) out[i] = Byte();
    return out;
  }
  size_t remaining() const { return bytes_.size() - pos_; }

 private:
  uint8_t Byte() {
    if (pos_ >= bytes_.size()) {
      ADD_FAILURE() << "read past the end";
      return 0;
    }
    return bytes_[pos_++];
  }
  std::span<const uint8_t> bytes_;
  size_t pos_ = 0;
};

struct Sample {
  consensus::ConsensusRequest request;
  consensus::ConsensusOutput output;
  std::vector<Address> committee;
  std::vector<Attestation> attestations;
};

Sample MakeSample(uint64_t n) {
  Sample s;
  s.request.model_digest = crypto::Sha256Of(std::string_view("m"));
  s.request.prompt_token_ids = {1, 2, 3};
  s.request.max_tokens = 8;
  s.request.security = {consensus::SecurityMode::kSampling, n, 0, 0, {}};
  s.request.max_fee = Amount(500);
  s.request.client = Key('9').address();
  s.request.client_nonce = 77;
  s.request.epoch = 3;
  s.output.token_ids = {5, 6, 7};
  const consensus::Domain domain{31337, Key('8').address()};
  for (uint64_t i = 0; i < n; ++i) s.committee.push_back(Key(static_cast<char>('1' + i)).address());
  for (uint64_t i = 0; i < n; ++i) {
    s.attestations.push_back(consensus::MakeAttestation(domain, consensus::RequestId(s.request),
                                                        crypto::Sha256Of(std::string_view("e")), 3,
                                                        s.committee, s.output, 3,
                                                        Key(static_cast<char>('1' + i)))
                                 .value());
  }
  return s;
}

TEST(EvmCodecTest, AttestationBodyIs297BytesWithoutTheVersion) {
  const Sample s = MakeSample(1);
  const std::vector<uint8_t> body = AttestationBody(s.attestations[0]);
  const std::vector<uint8_t> full = consensus::EncodeAttestation(s.attestations[0]);
  ASSERT_EQ(body.size(), 297u);
  EXPECT_EQ(std::vector<uint8_t>(full.begin() + 1, full.end()), body);
}

TEST(EvmCodecTest, SettleItemOfSamplingCertificateFollowsTheDocumentedLayout) {
  const Sample s = MakeSample(3);
  SettlementItem item;
  item.certificate.request = s.request;
  item.certificate.client_signature = Key('9').Sign(crypto::Sha256Of(std::string_view("x")));
  item.certificate.committee = s.committee;
  item.certificate.attestations = s.attestations;
  item.certificate.commitment = s.attestations[0].commitment;
  item.output = s.output;
  const std::vector<uint8_t> one = EncodeSettleItem(item);
  const std::vector<std::vector<uint8_t>> items = {one, one};
  const std::vector<uint8_t> batch = EncodeSettleBatch(items);

  Reader r(batch);
  EXPECT_EQ(r.Int(2), 2u);  // u16 count
  for (int copy = 0; copy < 2; ++copy) {
    EXPECT_EQ(r.Int(1), 1u);  // kind: sampling
    const size_t len = r.Int(4);
    const std::vector<uint8_t> req = r.Raw(len);
    consensus::Decoder d(req);
    const auto decoded = consensus::DecodeRequest(d);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_EQ(*decoded, s.request);
    EXPECT_EQ(d.remaining(), 0u);
    EXPECT_EQ(r.Fixed<65>(), item.certificate.client_signature);
    EXPECT_EQ(r.Fixed<32>(), s.attestations[0].echelon_id);
    EXPECT_EQ(r.Fixed<32>(), s.attestations[0].commitment);
    EXPECT_EQ(r.Int(8), 3u);  // completion tokens
    EXPECT_EQ(r.Fixed<32>(), s.attestations[0].merkle_root);
    for (const Attestation& a : s.attestations) {
      EXPECT_EQ(r.Fixed<32>(), a.proof);
      EXPECT_EQ(r.Fixed<65>(), a.signature);
    }
  }
  EXPECT_EQ(r.remaining(), 0u);
}

TEST(EvmCodecTest, SettleItemOfCrossValidationCarriesSaltAndValidators) {
  Sample s = MakeSample(1);
  s.request.security = {consensus::SecurityMode::kCrossValidation, 0, 500'000, 2,
                        consensus::XvSaltHash(consensus::XvSalt{})};
  SettlementItem item;
  item.certificate.request = s.request;
  item.certificate.committee = {s.committee[0]};
  item.certificate.attestations = {s.attestations[0]};
  item.certificate.commitment = s.attestations[0].commitment;
  consensus::XvCertificate xv;
  xv.base = item.certificate;
  xv.salt = consensus::XvSalt{};
  (*xv.salt)[0] = 0x42;
  const Sample validators = MakeSample(2);
  xv.validators = validators.attestations;
  item.xv = xv;

  const std::vector<uint8_t> bytes = EncodeSettleItem(item);
  Reader r(bytes);
  EXPECT_EQ(r.Int(1), 2u);  // kind: cross-validation
  r.Raw(r.Int(4));
  r.Raw(65 + 32 + 32 + 8 + 32);
  EXPECT_EQ(r.Fixed<32>(), s.attestations[0].proof);  // the executor's slot
  EXPECT_EQ(r.Fixed<65>(), s.attestations[0].signature);
  EXPECT_EQ(r.Int(1), 1u);  // salt present
  EXPECT_EQ(r.Fixed<32>(), *xv.salt);
  EXPECT_EQ(r.Int(1), 2u);  // validators
  for (const Attestation& v : xv.validators) {
    EXPECT_EQ(r.Fixed<32>(), v.proof);
    EXPECT_EQ(r.Fixed<65>(), v.signature);
  }
  EXPECT_EQ(r.remaining(), 0u);

  item.xv->salt.reset();
  item.xv->validators.clear();
  const std::vector<uint8_t> unrevealed = EncodeSettleItem(item);
  ASSERT_EQ(unrevealed.size(), bytes.size() - 32 - 2 * 97);
  EXPECT_EQ(unrevealed[unrevealed.size() - 2], 0);  // no salt
  EXPECT_EQ(unrevealed.back(), 0);                  // no validators
}

TEST(EvmCodecTest, SettleBatchRequestsReadBack) {
  const Sample three = MakeSample(3);
  SettlementItem sampling;
  sampling.certificate.request = three.request;
  sampling.certificate.committee = three.committee;
  sampling.certificate.attestations = three.attestations;
  sampling.certificate.commitment = three.attestations[0].commitment;
  Sample one = MakeSample(1);
  one.request.client_nonce = 78;
  one.request.security = {consensus::SecurityMode::kCrossValidation, 0, 1, 2, {}};
  SettlementItem xv;
  xv.certificate.request = one.request;
  xv.certificate.committee = one.committee;
  xv.certificate.attestations = one.attestations;
  xv.xv = consensus::XvCertificate{xv.certificate, consensus::XvSalt{}, MakeSample(2).attestations};
  const std::vector<std::vector<uint8_t>> items = {EncodeSettleItem(xv), EncodeSettleItem(sampling),
                                                   EncodeSettleItem(xv)};
  std::vector<uint8_t> batch = EncodeSettleBatch(items);
  const auto requests = DecodeSettleBatchRequests(batch);
  ASSERT_TRUE(requests.ok()) << requests.status();
  ASSERT_EQ(requests->size(), 3u);
  EXPECT_EQ((*requests)[0], one.request);
  EXPECT_EQ((*requests)[1], three.request);
  EXPECT_EQ((*requests)[2], one.request);
  // Cut inside the last item: the readable prefix.
  batch.resize(batch.size() - 10);
  EXPECT_EQ(DecodeSettleBatchRequests(batch).value().size(), 2u);
  EXPECT_EQ(DecodeSettleBatchRequests(std::vector<uint8_t>{0}).status().code(),
            absl::StatusCode::kInvalidArgument);

  // The co-signed form: member table first, 33-byte slots (p ‖ member index).
  const std::vector<CosignSlot> slots = CosignSlots(xv);
  ASSERT_EQ(slots.size(), 3u);  // the executor, then both validators
  EXPECT_EQ(slots[0].member, one.attestations[0].member);
  EXPECT_EQ(slots[0].entry.digest, consensus::AttestationDigest(one.attestations[0]));
  EXPECT_EQ(slots[0].entry.signature, one.attestations[0].signature);
  std::vector<CosignedMember> table(2);
  table[0].address.fill(0xa1);
  table[1].address.fill(0xb2);
  auto index = [](const Address&) { return uint8_t{1}; };
  const std::vector<uint8_t> cosigned_sampling = EncodeCosignedItem(sampling, index);
  EXPECT_EQ(cosigned_sampling.size(), EncodeSettleItem(sampling).size() - 3 * 64);
  EXPECT_EQ(cosigned_sampling.back(), 1);  // the last slot's member index
  const std::vector<std::vector<uint8_t>> cosigned_items = {EncodeCosignedItem(xv, index),
                                                            cosigned_sampling};
  const std::vector<uint8_t> cosigned = EncodeCosignedBatch(table, cosigned_items);
  ASSERT_EQ(cosigned.size(), 3 + 2 * 85 + cosigned_items[0].size() + cosigned_items[1].size());
  EXPECT_EQ(cosigned[2], 2);     // member count
  EXPECT_EQ(cosigned[3], 0xa1);  // the first member's address
  const auto cosigned_requests = DecodeSettleBatchRequests(cosigned, /*cosigned=*/true);
  ASSERT_TRUE(cosigned_requests.ok()) << cosigned_requests.status();
  ASSERT_EQ(cosigned_requests->size(), 2u);
  EXPECT_EQ((*cosigned_requests)[0], one.request);
  EXPECT_EQ((*cosigned_requests)[1], three.request);
  const std::vector<uint8_t> cut_table(cosigned.begin(), cosigned.begin() + 3 + 85);
  EXPECT_EQ(DecodeSettleBatchRequests(cut_table, true).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(EvmCodecTest, DisputeEvidenceFollowsTheDocumentedLayout) {
  const Sample s = MakeSample(2);
  DisputeEvidence ev;
  ev.request = s.request;
  ev.client_signature = Key('9').Sign(crypto::Sha256Of(std::string_view("y")));
  ev.committee = s.committee;
  ev.member_attestations = s.attestations;
  ev.referee_attestations = {s.attestations[1]};
  ev.output = s.output;
  const auto bytes = EncodeDisputeEvidence(ev);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  Reader r(*bytes);
  r.Raw(r.Int(4));
  EXPECT_EQ(r.Fixed<65>(), ev.client_signature);
  EXPECT_EQ(r.Int(1), 2u);
  EXPECT_EQ(r.Fixed<20>(), s.committee[0]);
  EXPECT_EQ(r.Fixed<20>(), s.committee[1]);
  EXPECT_EQ(r.Int(1), 2u);
  EXPECT_EQ(r.Raw(297), AttestationBody(s.attestations[0]));
  EXPECT_EQ(r.Raw(297), AttestationBody(s.attestations[1]));
  EXPECT_EQ(r.Int(1), 1u);
  EXPECT_EQ(r.Raw(297), AttestationBody(s.attestations[1]));
  EXPECT_EQ(r.Int(1), 1u);  // has output
  EXPECT_EQ(r.Int(4), 3u);  // enc(O): count, ids, finish reason
  EXPECT_EQ(r.Int(8), 5u);
  EXPECT_EQ(r.Int(8), 6u);
  EXPECT_EQ(r.Int(8), 7u);
  EXPECT_EQ(r.Int(8), 0u);
  EXPECT_EQ(r.remaining(), 0u);

  ev.output.reset();
  const auto without = EncodeDisputeEvidence(ev);
  ASSERT_TRUE(without.ok());
  EXPECT_EQ(without->back(), 0);

  ev.referee_attestations.assign(256, s.attestations[0]);
  EXPECT_EQ(EncodeDisputeEvidence(ev).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(EvmCodecTest, RevertReasonsMapToTheirStatusCodes) {
  absl::Status s =
      StatusFromRevertReason("FAILED_PRECONDITION: insufficient stake: bonded 5, asked 10");
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(s.message(), "insufficient stake: bonded 5, asked 10");
  EXPECT_EQ(StatusFromRevertReason("NOT_FOUND: x").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(StatusFromRevertReason("ALREADY_EXISTS: x").code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(StatusFromRevertReason("PERMISSION_DENIED: x").code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(StatusFromRevertReason("INVALID_ARGUMENT: x").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(StatusFromRevertReason("OUT_OF_RANGE: x").code(), absl::StatusCode::kOutOfRange);
  // Unknown prefixes (and OK, which no rule returns) keep the whole reason.
  s = StatusFromRevertReason("Ownable: caller is not the owner");
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("Ownable: caller is not the owner"), absl::string_view::npos);
  EXPECT_EQ(StatusFromRevertReason("OK: fine").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(StatusFromRevertReason("").code(), absl::StatusCode::kFailedPrecondition);
  // Non-revert errors pass through unchanged.
  EXPECT_EQ(MapCallError(absl::UnavailableError("down")).code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(MapCallError(absl::OkStatus()).ok());
}

TEST(EvmCodecTest, AddressesInRevertReasonsAreChecksummed) {
  const Address a = Key('5').address();
  std::string lower = evm::AddressHex(a);
  const std::string hash = evm::ToHex(crypto::Sha256Of(std::string_view("h")));
  const absl::Status s = StatusFromRevertReason(
      absl::StrCat("PERMISSION_DENIED: referee ", lower, ": bad signature on ", hash));
  EXPECT_EQ(s.message(), absl::StrCat("referee ", crypto::AddressToString(a), ": bad signature on ",
                                      hash));  // hashes untouched
  EXPECT_EQ(ChecksumAddresses("0x12 and 0xzz"), "0x12 and 0xzz");
  EXPECT_EQ(ChecksumAddresses(lower + ","), crypto::AddressToString(a) + ",");
}

TEST(EvmCodecTest, RejectCodesMapToTheEmbeddedBackendsStatuses) {
  using consensus::CertificateCheck;
  struct Case {
    uint8_t code;
    absl::StatusCode status;
    CertificateCheck check;
  };
  const Case cases[] = {
      {1, absl::StatusCode::kInvalidArgument, CertificateCheck::kMalformed},
      {2, absl::StatusCode::kNotFound, CertificateCheck::kValid},
      {3, absl::StatusCode::kPermissionDenied, CertificateCheck::kBadClientSignature},
      {4, absl::StatusCode::kPermissionDenied, CertificateCheck::kWrongCommittee},
      {5, absl::StatusCode::kPermissionDenied, CertificateCheck::kConflictingCommitments},
      {6, absl::StatusCode::kAlreadyExists, CertificateCheck::kValid},
      {7, absl::StatusCode::kFailedPrecondition, CertificateCheck::kValid},
      {8, absl::StatusCode::kFailedPrecondition, CertificateCheck::kValid},
      {9, absl::StatusCode::kPermissionDenied, CertificateCheck::kBadSalt},
      {10, absl::StatusCode::kPermissionDenied, CertificateCheck::kMissingValidators},
      {11, absl::StatusCode::kInternal, CertificateCheck::kValid},
  };
  for (const Case& c : cases) {
    const RejectedItem r = MapRejectCode(c.code);
    EXPECT_EQ(r.status.code(), c.status) << int{c.code};
    EXPECT_EQ(r.check, c.check) << int{c.code};
    EXPECT_NE(r.status.message().find(absl::StrCat("rejected on chain: code ", c.code)),
              absl::string_view::npos)
        << r.status;
  }
}

TEST(EvmCodecTest, GasMarginIsTwentyPercentAndSaturates) {
  EXPECT_EQ(WithGasMargin(100'000), 120'000u);
  EXPECT_EQ(WithGasMargin(UINT64_MAX - 1), UINT64_MAX);
}

TEST(EvmTxJournalTest, RecordsBeforeBroadcastAndKeepsPendingAcrossReopen) {
  const std::filesystem::path dir = test::FreshTestDir("evm_journal_");
  const std::filesystem::path file = dir / "tx.db";
  const Address contract = Key('a').address();
  const Address other_contract = Key('b').address();
  JournaledTx t1{
      Key('1').address(), 4, crypto::Sha256Of(std::string_view("t1")), {1, 2, 3}, "stake"};
  JournaledTx t2{Key('1').address(), 5, crypto::Sha256Of(std::string_view("t2")), {4}, "unstake"};
  JournaledTx t3{Key('2').address(), 0, crypto::Sha256Of(std::string_view("t3")), {5}, "settle"};
  {
    auto journal = TxJournal::Open(file, 31337, contract).value();
    ASSERT_TRUE(journal->Record(t2).ok());
    ASSERT_TRUE(journal->Record(t1).ok());
    ASSERT_TRUE(journal->Record(t1).ok());  // a re-send records nothing new
    ASSERT_TRUE(journal->Record(t3).ok());
    ASSERT_TRUE(journal->MarkMined(t3.hash, 12, "ok").ok());
    EXPECT_EQ(journal->StateOf(t3.hash).value(), TxState::kMined);
    EXPECT_EQ(journal->StateOf(crypto::Sha256Of(std::string_view("none"))).status().code(),
              absl::StatusCode::kNotFound);
  }
  {
    auto journal = TxJournal::Open(file, 31337, contract).value();
    const std::vector<JournaledTx> pending = journal->Pending().value();
    ASSERT_EQ(pending.size(), 2u);  // by signer, then nonce
    EXPECT_EQ(pending[0].hash, t1.hash);
    EXPECT_EQ(pending[0].raw, t1.raw);
    EXPECT_EQ(pending[0].nonce, 4u);
    EXPECT_EQ(pending[0].purpose, "stake");
    EXPECT_EQ(pending[1].hash, t2.hash);
    ASSERT_TRUE(journal->MarkDropped(t1.hash, "nonce taken").ok());
    EXPECT_EQ(journal->Pending().value().size(), 1u);
    EXPECT_EQ(journal->All(t1.signer).value().size(), 2u);
  }
  // Another contract or chain sees none of it.
  EXPECT_TRUE(TxJournal::Open(file, 31337, other_contract).value()->Pending().value().empty());
  EXPECT_TRUE(TxJournal::Open(file, 1, contract).value()->Pending().value().empty());
  // In memory: works, forgets on close.
  auto memory = TxJournal::Open({}, 31337, contract).value();
  ASSERT_TRUE(memory->Record(t1).ok());
  EXPECT_EQ(memory->Pending().value().size(), 1u);
}

// A replacement (same signer and nonce, another hash) mined drops the replaced one, and nothing
// of another nonce or signer.
TEST(EvmTxJournalTest, MinedDropsTheOtherPendingTransactionsOfItsNonce) {
  const Address contract = Key('a').address();
  const Address signer = Key('1').address();
  auto journal = TxJournal::Open({}, 31337, contract).value();
  auto tx = [&](std::string_view name, const Address& from, uint64_t nonce) {
    return JournaledTx{from, nonce, crypto::Sha256Of(name), {1}, std::string(name)};
  };
  const JournaledTx stuck = tx("stuck", signer, 7), replacement = tx("replacement", signer, 7);
  const JournaledTx next = tx("next", signer, 8), same_nonce_other = tx("x", Key('2').address(), 7);
  for (const JournaledTx& t : {stuck, replacement, next, same_nonce_other}) {
    ASSERT_TRUE(journal->Record(t).ok());
  }
  ASSERT_TRUE(journal->MarkMined(replacement.hash, 40, "ok").ok());
  EXPECT_EQ(journal->StateOf(replacement.hash).value(), TxState::kMined);
  EXPECT_EQ(journal->StateOf(stuck.hash).value(), TxState::kDropped);
  EXPECT_EQ(journal->StateOf(next.hash).value(), TxState::kPending);
  EXPECT_EQ(journal->StateOf(same_nonce_other.hash).value(), TxState::kPending);
}

}  // namespace
}  // namespace atoma::ledger::evm_backend
