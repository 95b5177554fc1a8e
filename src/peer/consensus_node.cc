#include "atoma/peer/consensus_node.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "atoma/common/logging.h"
#include "atoma/common/status.h"
#include "atoma/consensus/committee.h"
#include "atoma/consensus/round.h"
#include "atoma/consensus/xv.h"
#include "atoma/v1/peer.grpc.pb.h"
#include "envelope.h"
#include "executions.h"

namespace atoma::peer {
namespace {

using consensus::Attestation;
using consensus::CommitteeDraws;
using consensus::ConsensusOutput;
using consensus::ConsensusRequest;
using std::chrono::milliseconds;

constexpr char kExecute[] = "Execute";
constexpr char kAttest[] = "Attest";
constexpr char kGetAttestations[] = "GetAttestations";
constexpr char kCosign[] = "Cosign";

grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

std::string Short(const Address& a) { return crypto::AddressToString(a).substr(0, 10); }
std::string ShortHex(const Hash256& h) { return crypto::ToHex(h).substr(0, 12); }

template <size_t N>
bool CopyBytes(const std::string& in, std::array<uint8_t, N>* out) {
  if (in.size() != N) return false;
  std::memcpy(out->data(), in.data(), N);
  return true;
}

int64_t SystemUnixMs() {
  return std::chrono::duration_cast<milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int64_t SteadyMs() {
  return std::chrono::duration_cast<milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// A streamed TokenChunk as engine token events (the chunk's text goes with its last token).
void AppendChunk(const v1::TokenChunk& chunk, std::vector<engine::StreamEvent>* events) {
  for (int i = 0; i < chunk.token_ids_size(); ++i) {
    engine::StreamEvent ev;
    ev.token_id = chunk.token_ids(i);
    if (i < chunk.tokens_size()) ev.logprob = chunk.tokens(i).logprob();
    if (i == chunk.token_ids_size() - 1) ev.text = chunk.text();
    events->push_back(std::move(ev));
  }
}

// The output a streamed Execute carried: its tokens and the finish reason sent with the
// attestation (consensus::FinishReason on the wire).
ConsensusOutput OutputOf(const std::vector<engine::StreamEvent>& events, uint64_t finish_reason) {
  ConsensusOutput out;
  for (const engine::StreamEvent& ev : events) {
    out.token_ids.push_back(static_cast<uint32_t>(ev.token_id));
  }
  out.finish_reason = finish_reason == static_cast<uint64_t>(consensus::FinishReason::kLength)
                          ? consensus::FinishReason::kLength
                          : consensus::FinishReason::kStop;
  return out;
}

}  // namespace

class ConsensusNodeImpl;

// ---------------------------------------------------------------------------------------------
// Entry side: one round.

class EntryRound : public RoundHandle, public std::enable_shared_from_this<EntryRound> {
 public:
  EntryRound(ConsensusNodeImpl* node, ConsensusRequest request, crypto::Signature client_signature,
             Hash256 request_id, ServedModel model, CommitteeDraws draws)
      : node_(node),
        request_(std::move(request)),
        client_signature_(client_signature),
        request_id_(request_id),
        model_(model),
        draws_(std::move(draws)) {}

  // RoundHandle.
  Wait Next(engine::StreamEvent* token, milliseconds timeout) override;
  const RoundOutcome& outcome() const override { return outcome_; }
  const Hash256& request_id() const override { return request_id_; }
  const std::vector<Address>& initial_committee() const override { return draws_.committee; }
  std::optional<Provisional> provisional() const override {
    std::lock_guard lock(mu_);
    return provisional_;
  }
  // Cross-validation: the client's salt (checked here; the coin is decided by the Round).
  absl::StatusOr<bool> RevealSalt(const consensus::XvSalt& salt);

  // Runs the round to its end on the calling thread.
  void Drive();
  // A peer's attestation for this round (from an Execute response or an Attest push).
  void Deliver(const Attestation& attestation);
  // Shutdown: the round ends at `deadline_steady_ms` if it has not.
  void StopBy(int64_t deadline_steady_ms);

  absl::Status Init(const consensus::Domain& domain, uint64_t epoch, const ConsensusOptions& o,
                    const Address& self);
  void set_own(std::shared_ptr<Execution> own) { own_ = std::move(own); }

 private:
  void Perform(std::vector<consensus::RoundAction> actions);
  // Starts an Execute call on its own thread (a local execution when `target` is this node).
  void StartCall(const Address& target, std::vector<Address> committee, bool referee,
                 bool stream_tokens);
  void CallRemote(const Address& target, const std::vector<Address>& committee, bool referee,
                  bool stream_tokens, std::shared_ptr<grpc::ClientContext> context);
  // The Execute payload of this round's request for `committee` (unsigned).
  v1::PeerMessage ExecuteMessage(const std::vector<Address>& committee, bool referee,
                                 bool stream_tokens) const;
  absl::StatusOr<ConsensusOutput> OutputFor(const consensus::Certificate& certificate);
  // The round certified `certificate` (and, for cross-validation, `xv`): the output, the
  // client's outcome, then the journal and the settlement outbox.
  void Certify(const consensus::Certificate& certificate,
               const std::optional<consensus::XvCertificate>& xv);
  // The output that `commitment` commits to for `committee`: this node's own (waited for), a
  // relayed stream, or (when `fetch`) a replay fetched from a member after the round decided.
  absl::StatusOr<ConsensusOutput> OutputMatching(const std::vector<Address>& committee,
                                                 const Hash256& commitment, bool fetch);
  void Finish(absl::Status status, std::string detail);

  ConsensusNodeImpl* node_;
  const ConsensusRequest request_;
  const crypto::Signature client_signature_;
  const Hash256 request_id_;
  const ServedModel model_;
  const CommitteeDraws draws_;
  Address self_{};
  std::optional<consensus::Round> round_;  // touched by the driver thread only
  std::shared_ptr<Execution> own_;         // this node's execution when it is a member

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Attestation> inbox_;
  std::optional<int64_t> stop_at_;
  // Relay (when this node is not a member): one member's streamed tokens.
  std::vector<engine::StreamEvent> relayed_;
  bool relay_chosen_ = false;
  std::optional<ConsensusOutput> relayed_output_;  // complete relayed stream with finish reason
  size_t read_index_ = 0;  // the client's next token (one reader: the API stream)
  // Cross-validation.
  std::optional<Provisional> provisional_;
  bool provisional_read_ = false;
  bool awaiting_salt_ = false;
  std::optional<consensus::XvSalt> salt_inbox_;
  std::vector<std::shared_ptr<grpc::ClientContext>> calls_;
  int live_calls_ = 0;
  bool finished_ = false;
  RoundOutcome outcome_;  // written before finished_
};

// ---------------------------------------------------------------------------------------------
// The node.

class PeerService;

class ConsensusNodeImpl : public ConsensusNode, public ledger::Cosigner {
 public:
  ConsensusNodeImpl(Dependencies deps, ConsensusOptions options, ledger::Params params);
  ~ConsensusNodeImpl() override { Shutdown(milliseconds(0)); }

  grpc::Service* service() override;
  const consensus::Domain& domain() const override { return params_.domain; }
  absl::StatusOr<std::shared_ptr<RoundHandle>> Submit(
      const ConsensusRequest& request, const crypto::Signature& client_signature) override;
  absl::StatusOr<bool> RevealSalt(const Hash256& request_id,
                                  const consensus::XvSalt& salt) override;
  absl::StatusOr<int> ResumeJournaled() override;
  void Shutdown(milliseconds deadline) override;
  PeerStats stats() const override;
  ledger::Cosigner& cosigner() override { return *this; }
  std::vector<absl::StatusOr<crypto::Signature>> Cosign(
      std::span<const ledger::Cosigner::Request> requests) override;

  // --- Used by the service and the rounds ---
  const Address& self() const { return deps_.key->address(); }
  const ConsensusOptions& options() const { return options_; }
  int64_t UnixMs() const { return options_.unix_ms ? options_.unix_ms() : SystemUnixMs(); }
  void Reject(const std::string& reason) {
    std::lock_guard lock(stats_mu_);
    ++stats_.rejected[reason];
  }
  template <typename F>
  void Count(F f) {
    std::lock_guard lock(stats_mu_);
    f(stats_);
  }
  bool shutting_down() const { return shutting_down_.load(); }

  const ServedModel* ModelByDigest(const Hash256& digest) const {
    for (const ServedModel& m : deps_.models) {
      if (m.engine->info().digest == digest) return &m;
    }
    return nullptr;
  }
  // The draws of `request` in its epoch (seed and frozen snapshot from the ledger).
  absl::StatusOr<CommitteeDraws> Draws(const ConsensusRequest& request, const Hash256& request_id,
                                       const Hash256& echelon_id);
  // Checks a request this node is asked to execute (entry or member side): model served, client
  // signature, epoch current or previous. `reason` gets the PeerStats key on error.
  struct CheckedRequest {
    const ServedModel* model = nullptr;
    uint64_t current_epoch = 0;  // the ledger's, as read for the check
  };
  absl::StatusOr<CheckedRequest> CheckRequest(const ConsensusRequest& request,
                                              const crypto::Signature& client_signature,
                                              std::string* reason);
  // Member/referee side without the envelope. Assign checks the assignment (request, epoch,
  // the committee is a valid draw, this node holds the role) and starts the execution, or finds
  // the one that ran before; AttestTo waits for the output, signs, journals and keeps the
  // attestation.
  struct Assignment {
    const ServedModel* model = nullptr;
    Hash256 request_id{};
    std::shared_ptr<Execution> execution;
    CommitteeDraws draws;
  };
  absl::StatusOr<Assignment> Assign(const ConsensusRequest& request,
                                    const crypto::Signature& client_signature,
                                    const std::vector<Address>& committee, bool referee,
                                    std::string* reason);
  absl::StatusOr<Attestation> AttestTo(const Assignment& assignment,
                                       const ConsensusRequest& request,
                                       const std::vector<Address>& committee, bool referee);
  // Signs a SignedMessage for `method`.
  v1::SignedMessage Sign(v1::PeerMessage message, const char* method) {
    message.set_method(method);
    message.set_sent_unix_ms(static_cast<uint64_t>(UnixMs()));
    return Seal(message, params_.domain, *deps_.key);
  }
  absl::StatusOr<Opened> OpenFrom(const v1::SignedMessage& m, const char* method);
  absl::StatusOr<std::shared_ptr<v1::Peer::Stub>> StubFor(const Address& node);
  // This node's co-signature over entries it signed (consensus::MakeCosignature), counted.
  absl::StatusOr<crypto::Signature> CosignOwn(std::span<const consensus::CosignEntry> entries) {
    absl::StatusOr<crypto::Signature> s =
        consensus::MakeCosignature(params_.domain, entries, *deps_.key);
    if (s.ok()) Count([](PeerStats& st) { ++st.cosignatures_signed; });
    return s;
  }
  // One member's co-signature: signed here for this node's own entries, else Peer.Cosign.
  absl::StatusOr<crypto::Signature> CosignOne(const ledger::Cosigner::Request& request);
  // Keeps a valid attestation (a member's, pushed or received); reports equivocation. Returns
  // false (with `reason`) when it was not kept.
  bool StoreAttestation(const Attestation& attestation, std::string* reason);
  std::vector<Attestation> AttestationsFor(const Hash256& request_id);
  void Broadcast(const Attestation& attestation, const std::vector<Address>& committee);
  std::shared_ptr<EntryRound> ActiveRound(const Hash256& request_id);
  void RoundEnded(const Hash256& request_id);
  // The round of `request_id` settles nothing (it failed): its (client, nonce) is free again.
  void ReleaseNonceClaim(const ConsensusRequest& request, const Hash256& request_id);
  // After a restart: the claim (and worst-case reservation) Submit took for a journaled request
  // whose round resumes or whose certificate is not settled yet. Keeps a claim already held.
  void RestoreNonceClaim(const ConsensusRequest& request, const Hash256& request_id);
  // fee_per_token x (prompt + max_tokens): the most `request` can cost its client.
  absl::StatusOr<Uint256> WorstFee(const ConsensusRequest& request) const {
    return CheckedMul(params_.fee_per_token, request.prompt_token_ids.size() + request.max_tokens);
  }
  // Releases the escrow reservations of `client`'s claims whose requests are done with its
  // escrow: the journal says the certificate settled or was refused for good, or the round ended
  // without one (a dispute is settled before the round is marked failed). The claims themselves
  // stay (the nonce stays taken until the epoch pruning, as before). Journal reads, no lock held
  // while reading.
  absl::Status ReleaseSettledClaims(const Address& client);
  Executions& executions() { return executions_; }
  ledger::LedgerClient& ledger() { return *deps_.ledger; }
  journal::Journal& journal() { return *deps_.journal; }
  journal::SettlementOutbox* outbox() { return deps_.outbox; }
  const ledger::Params& params() const { return params_; }
  // Runs `body` on a thread Shutdown waits for; false (and nothing runs) after Shutdown.
  bool TrackThread(std::function<void()> body);

 private:
  absl::StatusOr<std::shared_ptr<EntryRound>> StartRound(const ConsensusRequest& request,
                                                         const crypto::Signature& client_signature,
                                                         const Hash256& request_id,
                                                         const ServedModel& model, bool journal_it);

  Dependencies deps_;
  ConsensusOptions options_;
  ledger::Params params_;
  std::unique_ptr<PeerService> service_;
  Executions executions_;
  std::shared_ptr<spdlog::logger> log_ = GetLogger("consensus");
  std::atomic<bool> shutting_down_{false};

  mutable std::mutex stats_mu_;
  PeerStats stats_;

  std::mutex mu_;
  std::map<Hash256, std::shared_ptr<EntryRound>> rounds_;
  // (client, nonce) → the request this node accepted with it whose round runs or may still
  // settle: a second request with the same pair could never be paid (a client nonce settles
  // once). Its worst-case fee is reserved against the client's escrow until it settles (or is
  // refused for good, or its round ends without a certificate): ReleaseSettledClaims. Claims of
  // epochs no request may use any more are dropped.
  struct NonceClaim {
    Hash256 request_id{};
    uint64_t epoch = 0;
    Uint256 worst_fee;
    bool reserved = true;  // worst_fee still counts against the client's escrow
  };
  std::map<std::pair<Address, uint64_t>, NonceClaim> nonce_claims_;
  uint64_t claims_pruned_at_epoch_ = 0;  // the current epoch when nonce_claims_ was last pruned
  std::map<std::string, std::shared_ptr<v1::Peer::Stub>> stubs_;  // by endpoint
  // Attestations received per request (first valid one per signer), bounded.
  std::map<Hash256, std::map<Address, Attestation>> attestations_;
  std::deque<Hash256> attestation_order_;
  int live_threads_ = 0;
  bool threads_closed_ = false;  // Shutdown waited for every thread; TrackThread refuses
  std::condition_variable threads_done_;
};

class PeerService final : public v1::Peer::Service {
 public:
  explicit PeerService(ConsensusNodeImpl* node) : node_(node) {}

  grpc::Status Execute(grpc::ServerContext* context, const v1::SignedMessage* in,
                       grpc::ServerWriter<v1::ExecuteResponse>* writer) override;
  grpc::Status Attest(grpc::ServerContext* context, const v1::SignedMessage* in,
                      v1::AttestResponse* out) override;
  grpc::Status Cosign(grpc::ServerContext* context, const v1::SignedMessage* in,
                      v1::CosignResponse* out) override;
  grpc::Status GetAttestations(grpc::ServerContext* context, const v1::SignedMessage* in,
                               v1::GetAttestationsResponse* out) override;

 private:
  ConsensusNodeImpl* node_;
};

// ---------------------------------------------------------------------------------------------
// ConsensusNodeImpl

ConsensusNodeImpl::ConsensusNodeImpl(Dependencies deps, ConsensusOptions options,
                                     ledger::Params params)
    : deps_(std::move(deps)),
      options_(std::move(options)),
      params_(std::move(params)),
      service_(std::make_unique<PeerService>(this)),
      executions_(options_.output_cache_entries) {}

grpc::Service* ConsensusNodeImpl::service() { return service_.get(); }

bool ConsensusNodeImpl::TrackThread(std::function<void()> body) {
  {
    std::lock_guard lock(mu_);
    // After Shutdown has joined everything, nothing new may start: the thread would outlive the
    // node (a handler still running on the gRPC server can get here late).
    if (threads_closed_) return false;
    ++live_threads_;
  }
  std::thread([this, body = std::move(body)] {
    body();
    std::lock_guard lock(mu_);
    if (--live_threads_ == 0) threads_done_.notify_all();
  }).detach();
  return true;
}

absl::StatusOr<CommitteeDraws> ConsensusNodeImpl::Draws(const ConsensusRequest& request,
                                                        const Hash256& request_id,
                                                        const Hash256& echelon_id) {
  ASSIGN_OR_RETURN(ledger::Epoch epoch, deps_.ledger->GetEpoch(request.epoch));
  ASSIGN_OR_RETURN(std::vector<ledger::Candidate> snapshot,
                   deps_.ledger->EchelonSnapshot(request.epoch, echelon_id));
  std::vector<consensus::Candidate> candidates;
  candidates.reserve(snapshot.size());
  for (const ledger::Candidate& c : snapshot) candidates.push_back({c.address, c.stake});
  const uint64_t n = consensus::CommitteeSize(request.security);
  // Cross-validation: the draws after the backup are the k validators, then the referees.
  const uint64_t referees = request.security.mode == consensus::SecurityMode::kCrossValidation
                                ? consensus::XvRefereeDraws(request.security.k)
                                : consensus::RefereeCount(n);
  return consensus::SelectCommittee(epoch.seed, request_id, candidates, n,
                                    consensus::BackupCount(n), referees);
}

absl::StatusOr<ConsensusNodeImpl::CheckedRequest> ConsensusNodeImpl::CheckRequest(
    const ConsensusRequest& request, const crypto::Signature& client_signature,
    std::string* reason) {
  const ServedModel* model = ModelByDigest(request.model_digest);
  if (model == nullptr) {
    *reason = "unknown_model";
    return absl::NotFoundError(absl::StrCat("model digest ", crypto::ToHex(request.model_digest),
                                            " is not served by this node"));
  }
  if (absl::Status s = consensus::VerifyClientSignature(params_.domain, request, client_signature);
      !s.ok()) {
    *reason = "bad_client_signature";
    return s;
  }
  ASSIGN_OR_RETURN(ledger::Epoch current, deps_.ledger->CurrentEpoch());
  if (request.epoch > current.number || request.epoch + 1 < current.number) {
    *reason = "stale_epoch";
    return absl::FailedPreconditionError(
        absl::StrCat("epoch: the request is for epoch ", request.epoch, ", the ledger is at ",
                     current.number, " (only the current and the previous epoch are served)"));
  }
  return CheckedRequest{model, current.number};
}

absl::StatusOr<ConsensusNodeImpl::Assignment> ConsensusNodeImpl::Assign(
    const ConsensusRequest& request, const crypto::Signature& client_signature,
    const std::vector<Address>& committee, bool referee, std::string* reason) {
  if (shutting_down()) return absl::UnavailableError("the node is shutting down");
  ASSIGN_OR_RETURN(CheckedRequest checked, CheckRequest(request, client_signature, reason));
  const ServedModel* model = checked.model;
  const Hash256 request_id = consensus::RequestId(request);
  ASSIGN_OR_RETURN(CommitteeDraws draws, Draws(request, request_id, model->echelon_id));
  if (absl::Status s = consensus::CheckCommitteeView(draws, committee); !s.ok()) {
    *reason = "not_drawn";
    return absl::FailedPreconditionError(absl::StrCat("committee: ", s.message()));
  }
  const auto& role_list = referee ? draws.referees : committee;
  if (std::find(role_list.begin(), role_list.end(), self()) == role_list.end()) {
    *reason = "not_drawn";
    return absl::PermissionDeniedError(
        absl::StrCat("this node (", Short(self()), ") is not drawn as a ",
                     referee ? "referee" : "member", " of ", ShortHex(request_id)));
  }
  bool started = false;
  Assignment out{model, request_id, nullptr, draws};
  ASSIGN_OR_RETURN(out.execution,
                   executions_.GetOrStart(request_id, request, *model->engine, &started));
  if (started) Count([](PeerStats& s) { ++s.executions; });
  return out;
}

absl::StatusOr<Attestation> ConsensusNodeImpl::AttestTo(const Assignment& assignment,
                                                        const ConsensusRequest& request,
                                                        const std::vector<Address>& committee,
                                                        bool referee) {
  const ServedModel* model = assignment.model;
  const Hash256& request_id = assignment.request_id;
  const std::shared_ptr<Execution>* execution = &assignment.execution;
  // The member timeout bounds how long anyone waits for us; the engine's own limits bound the
  // work. Wait for the output in slices so that shutdown is noticed.
  while (!(*execution)->WaitDone(milliseconds(200))) {
    if (shutting_down()) return absl::UnavailableError("the node is shutting down");
  }
  RETURN_IF_ERROR((*execution)->status());
  const ConsensusOutput& output = (*execution)->output();
  Attestation a;
  if (!referee) {
    ASSIGN_OR_RETURN(a, consensus::MakeAttestation(params_.domain, request_id, model->echelon_id,
                                                   request.epoch, committee, output,
                                                   (*execution)->prompt_tokens(), *deps_.key));
  } else {
    // A referee's p is for its own address, which is not in the committee; C is over the
    // committee's addresses, so referees and members agree on C for the same output.
    a.domain = params_.domain;
    a.request_id = request_id;
    a.echelon_id = model->echelon_id;
    a.commitment = consensus::Commitment(consensus::OutputProofs(request_id, output, committee));
    a.proof = consensus::OutputProof(request_id, output, self());
    a.prompt_tokens = (*execution)->prompt_tokens();
    a.completion_tokens = output.token_ids.size();
    a.merkle_root = consensus::OutputMerkleRoot(output.token_ids);
    a.epoch = request.epoch;
    a.member = self();
    a.signature = deps_.key->Sign(consensus::AttestationDigest(a));
  }
  // Journal before anything leaves the node: never two different claims for one request.
  absl::Status journaled = deps_.journal->RecordOwnAttestation(a);
  if (absl::IsAlreadyExists(journaled)) {
    ASSIGN_OR_RETURN(std::optional<Attestation> stored, deps_.journal->OwnAttestation(request_id));
    if (!stored.has_value()) return journaled;
    log_->error(
        "{}: this node computed a different output than it attested before; sending the "
        "journaled attestation (check the engine's determinism)",
        ShortHex(request_id));
    a = *stored;
  } else if (!journaled.ok()) {
    return journaled;
  }
  Count([](PeerStats& s) { ++s.attestations_signed; });
  std::string ignored;
  StoreAttestation(a, &ignored);
  return a;
}

absl::StatusOr<Opened> ConsensusNodeImpl::OpenFrom(const v1::SignedMessage& m, const char* method) {
  std::string reason;
  auto opened = Open(m, params_.domain, method, UnixMs(), options_.replay_window_ms, &reason);
  if (!opened.ok()) {
    Reject(reason);
    return opened.status();
  }
  auto node = deps_.ledger->GetNode(opened->sender);
  if (absl::IsNotFound(node.status())) {
    Reject("unregistered_sender");
    return absl::PermissionDeniedError(absl::StrCat("peer message from ",
                                                    crypto::AddressToString(opened->sender),
                                                    ", which is not a registered node"));
  }
  if (!node.ok()) return node.status();
  return opened;
}

absl::StatusOr<std::shared_ptr<v1::Peer::Stub>> ConsensusNodeImpl::StubFor(const Address& node) {
  ASSIGN_OR_RETURN(ledger::NodeInfo info, deps_.ledger->GetNode(node));
  std::lock_guard lock(mu_);
  auto& stub = stubs_[info.endpoint];
  if (!stub) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(64 << 20);
    std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
    if (!options_.peer_root_certs_pem.empty()) {
      grpc::SslCredentialsOptions tls;
      tls.pem_root_certs = options_.peer_root_certs_pem;
      credentials = grpc::SslCredentials(tls);
    }
    stub = v1::Peer::NewStub(grpc::CreateCustomChannel(info.endpoint, credentials, args));
  }
  return stub;
}

bool ConsensusNodeImpl::StoreAttestation(const Attestation& a, std::string* reason) {
  std::optional<Attestation> contradicted;
  {
    std::lock_guard lock(mu_);
    auto [it, inserted] = attestations_.try_emplace(a.request_id);
    if (inserted) {
      attestation_order_.push_back(a.request_id);
      while (attestation_order_.size() > options_.output_cache_entries * 4) {
        attestations_.erase(attestation_order_.front());
        attestation_order_.pop_front();
      }
    }
    auto& by_signer = it->second;
    auto prev = by_signer.find(a.member);
    if (prev == by_signer.end()) {
      by_signer.emplace(a.member, a);
      return true;
    }
    if (prev->second == a) {
      *reason = "duplicate";
      return false;
    }
    if (consensus::SameOutputClaim(prev->second, a)) {
      prev->second = a;  // a view update: the committee changed
      return true;
    }
    contradicted = prev->second;
  }
  *reason = "equivocating";
  if (a.member != self()) {
    auto slashed = deps_.ledger->ReportEquivocation(self(), *contradicted, a);
    if (slashed.ok()) {
      Count([](PeerStats& s) { ++s.equivocations_reported; });
      log_->warn("{}: {} equivocated; slashed {}", ShortHex(a.request_id), Short(a.member),
                 slashed->slashed.ToDecimal());
    } else if (!absl::IsAlreadyExists(slashed.status())) {
      log_->warn("{}: reporting equivocation of {} failed: {}", ShortHex(a.request_id),
                 Short(a.member), slashed.status().ToString());
    }
  }
  return false;
}

std::vector<Attestation> ConsensusNodeImpl::AttestationsFor(const Hash256& request_id) {
  std::lock_guard lock(mu_);
  std::vector<Attestation> out;
  auto it = attestations_.find(request_id);
  if (it == attestations_.end()) return out;
  auto own = it->second.find(self());
  if (own != it->second.end()) out.push_back(own->second);
  for (const auto& [signer, a] : it->second) {
    if (signer != self()) out.push_back(a);
  }
  return out;
}

void ConsensusNodeImpl::Broadcast(const Attestation& attestation,
                                  const std::vector<Address>& committee) {
  std::vector<Address> targets;
  for (const Address& m : committee) {
    if (m != self()) targets.push_back(m);
  }
  if (targets.empty() || shutting_down()) return;
  TrackThread([this, attestation, targets] {
    v1::PeerMessage msg;
    const std::vector<uint8_t> bytes = consensus::EncodeAttestation(attestation);
    msg.mutable_attest()->set_attestation(bytes.data(), bytes.size());
    const v1::SignedMessage signed_msg = Sign(msg, kAttest);
    for (const Address& target : targets) {
      if (shutting_down()) return;
      auto stub = StubFor(target);
      if (!stub.ok()) continue;
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() +
                           milliseconds(options_.peer_call_timeout_ms));
      v1::AttestResponse response;
      grpc::Status s = (*stub)->Attest(&context, signed_msg, &response);
      if (!s.ok()) Count([](PeerStats& st) { ++st.peer_call_errors; });
    }
  });
}

std::shared_ptr<EntryRound> ConsensusNodeImpl::ActiveRound(const Hash256& request_id) {
  std::lock_guard lock(mu_);
  auto it = rounds_.find(request_id);
  return it == rounds_.end() ? nullptr : it->second;
}

void ConsensusNodeImpl::RoundEnded(const Hash256& request_id) {
  std::lock_guard lock(mu_);
  rounds_.erase(request_id);
}

void ConsensusNodeImpl::ReleaseNonceClaim(const ConsensusRequest& request,
                                          const Hash256& request_id) {
  std::lock_guard lock(mu_);
  const auto it = nonce_claims_.find({request.client, request.client_nonce});
  if (it != nonce_claims_.end() && it->second.request_id == request_id) nonce_claims_.erase(it);
}

void ConsensusNodeImpl::RestoreNonceClaim(const ConsensusRequest& request,
                                          const Hash256& request_id) {
  // An overflowing worst case reserves everything (Submit refused such a request anyway).
  const Uint256 worst = WorstFee(request).value_or(Uint256::Max());
  std::lock_guard lock(mu_);
  nonce_claims_.try_emplace({request.client, request.client_nonce},
                            NonceClaim{request_id, request.epoch, worst});
}

absl::Status ConsensusNodeImpl::ReleaseSettledClaims(const Address& client) {
  std::vector<std::pair<uint64_t, Hash256>> claims;  // (nonce, request id)
  {
    std::lock_guard lock(mu_);
    for (auto it = nonce_claims_.lower_bound({client, 0});
         it != nonce_claims_.end() && it->first.first == client; ++it) {
      // A round still running has nothing settled yet: no journal reads for it.
      if (it->second.reserved && !rounds_.contains(it->second.request_id)) {
        claims.emplace_back(it->first.second, it->second.request_id);
      }
    }
  }
  std::vector<std::pair<uint64_t, Hash256>> done;
  for (const auto& [nonce, id] : claims) {
    absl::StatusOr<journal::SettlementRecord> settlement = deps_.journal->GetSettlement(id);
    if (settlement.ok()) {
      if (settlement->state != journal::SettlementState::kPending) done.emplace_back(nonce, id);
      continue;
    }
    if (!absl::IsNotFound(settlement.status())) return settlement.status();
    // No certificate journaled: still running, or ended without one.
    absl::StatusOr<journal::RequestRecord> request = deps_.journal->GetRequest(id);
    if (request.ok() && request->state == journal::RequestState::kFailed) {
      done.emplace_back(nonce, id);
    } else if (!request.ok() && !absl::IsNotFound(request.status())) {
      return request.status();
    }
  }
  std::lock_guard lock(mu_);
  for (const auto& [nonce, id] : done) {
    const auto it = nonce_claims_.find({client, nonce});
    if (it != nonce_claims_.end() && it->second.request_id == id) it->second.reserved = false;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<RoundHandle>> ConsensusNodeImpl::Submit(
    const ConsensusRequest& request, const crypto::Signature& client_signature) {
  if (shutting_down()) return absl::UnavailableError("the node is shutting down");
  switch (request.security.mode) {
    case consensus::SecurityMode::kNone:
      return absl::InvalidArgumentError("security: `none` needs no consensus round");
    case consensus::SecurityMode::kCrossValidation:
      if (request.security.k > options_.max_committee_size) {
        return absl::InvalidArgumentError(
            absl::StrCat("security.cross_validation.validators: at most ",
                         options_.max_committee_size, " on this node, got ", request.security.k));
      }
      break;
    case consensus::SecurityMode::kSampling:
      if (request.security.n == 0 || request.security.n > options_.max_committee_size) {
        return absl::InvalidArgumentError(
            absl::StrCat("security.sampling.committee_size: must be between 1 and ",
                         options_.max_committee_size, " on this node, got ", request.security.n));
      }
      break;
  }
  std::string reason;
  ASSIGN_OR_RETURN(CheckedRequest checked, CheckRequest(request, client_signature, &reason));
  const ServedModel* model = checked.model;
  if (request.epoch != checked.current_epoch) {
    return absl::FailedPreconditionError(absl::StrCat(
        "epoch: the request is for epoch ", request.epoch, " but the ledger's current epoch is ",
        checked.current_epoch, "; sign the request again for the current epoch"));
  }
  // The worst case is known now (prompt + max_tokens): refuse rather than work and not be paid.
  ASSIGN_OR_RETURN(Uint256 worst, WorstFee(request));
  if (request.max_fee < worst) {
    return absl::FailedPreconditionError(
        absl::StrCat("max_fee: ", request.max_fee.ToDecimal(), " is below the worst-case fee ",
                     worst.ToDecimal(), " (", params_.fee_per_token.ToDecimal(),
                     " per token x (prompt + max_tokens))"));
  }
  // Escrow: what the client's escrow can still pay for, less the worst cases of its requests this
  // node accepted that have not settled yet (checked when the claim is taken below). Settled
  // claims are released before the balance is read, so a fee that left the balance is not also
  // still reserved (a claim that settles after the read stays reserved: counted twice, the safe
  // side).
  RETURN_IF_ERROR(ReleaseSettledClaims(request.client));
  ASSIGN_OR_RETURN(const ledger::EscrowInfo escrow, deps_.ledger->EscrowStatus(request.client));
  const Uint256 uncommitted = ledger::EscrowUncommitted(escrow);
  // "escrow: ..." is what the HTTP API answers with 402.
  auto short_of = [&](const Uint256& reserved, size_t unsettled) {
    std::string what = absl::StrCat("escrow: the client's escrow ", escrow.balance.ToDecimal());
    if (!escrow.pending.IsZero()) {
      absl::StrAppend(&what, " less ", CheckedSub(escrow.balance, uncommitted).value().ToDecimal(),
                      " pending withdrawal");
    }
    if (unsettled > 0) {
      absl::StrAppend(&what, " less ", reserved.ToDecimal(), " reserved for ", unsettled,
                      " unsettled request(s) on this node");
    }
    return absl::FailedPreconditionError(
        absl::StrCat(what, " does not cover the worst-case fee ", worst.ToDecimal()));
  };
  if (uncommitted < worst) return short_of(Uint256(), 0);
  // A (client, nonce) settles once (ledger.h): a request reusing a settled nonce could never be
  // paid, so refuse it before any member works on it.
  ASSIGN_OR_RETURN(const bool nonce_used,
                   deps_.ledger->IsNonceSettled(request.client, request.client_nonce));
  if (nonce_used) {
    return absl::AlreadyExistsError(
        absl::StrCat("client_nonce: nonce ", request.client_nonce, " of client ",
                     crypto::AddressToString(request.client),
                     " was already settled (a client nonce settles once); use a fresh nonce"));
  }
  const Hash256 request_id = consensus::RequestId(request);
  auto known = deps_.journal->GetRequest(request_id);
  if (known.ok()) {
    return absl::AlreadyExistsError(
        absl::StrCat("request ", crypto::ToHex(request_id), " was accepted before (state ",
                     std::string(journal::RequestStateName(known->state)), "); use a new nonce"));
  }
  if (!absl::IsNotFound(known.status())) return known.status();
  const auto nonce_key = std::make_pair(request.client, request.client_nonce);
  bool claimed = false;
  {
    std::lock_guard lock(mu_);
    if (checked.current_epoch != claims_pruned_at_epoch_) {
      // Once per epoch: requests of epochs before the previous one can no longer run. A claim
      // still reserved stays: its certificate may settle late (the ledger takes certificates of
      // past epochs), and until then its nonce is taken and its fee promised.
      std::erase_if(nonce_claims_, [&](const auto& claim) {
        return !claim.second.reserved && claim.second.epoch + 1 < checked.current_epoch;
      });
      claims_pruned_at_epoch_ = checked.current_epoch;
    }
    if (const auto held = nonce_claims_.find(nonce_key);
        held != nonce_claims_.end() && held->second.request_id != request_id) {
      return absl::AlreadyExistsError(absl::StrCat(
          "client_nonce: nonce ", request.client_nonce, " of client ",
          crypto::AddressToString(request.client), " is in use by request ",
          crypto::ToHex(held->second.request_id),
          " (running or certified, not settled yet; a client nonce settles once); use a fresh "
          "nonce"));
    }
    // The client's requests in flight here each may still cost their worst case: one escrow E
    // must not back many requests at once, each checked against the whole of E.
    Uint256 reserved;
    size_t unsettled = 0;
    for (auto it = nonce_claims_.lower_bound({request.client, 0});
         it != nonce_claims_.end() && it->first.first == request.client; ++it) {
      if (it->first == nonce_key || !it->second.reserved) continue;
      reserved = CheckedAdd(reserved, it->second.worst_fee).value_or(Uint256::Max());
      ++unsettled;
    }
    const absl::StatusOr<Uint256> needed = CheckedAdd(reserved, worst);
    if (!needed.ok() || uncommitted < *needed) return short_of(reserved, unsettled);
    auto [claim, inserted] =
        nonce_claims_.try_emplace(nonce_key, NonceClaim{request_id, request.epoch, worst});
    claimed = inserted;
  }
  absl::StatusOr<std::shared_ptr<EntryRound>> round =
      StartRound(request, client_signature, request_id, *model, true);
  if (!round.ok()) {
    if (claimed) ReleaseNonceClaim(request, request_id);
    return round.status();
  }
  return *std::move(round);
}

absl::StatusOr<std::shared_ptr<EntryRound>> ConsensusNodeImpl::StartRound(
    const ConsensusRequest& request, const crypto::Signature& client_signature,
    const Hash256& request_id, const ServedModel& model, bool journal_it) {
  ASSIGN_OR_RETURN(CommitteeDraws draws, Draws(request, request_id, model.echelon_id));
  auto round =
      std::make_shared<EntryRound>(this, request, client_signature, request_id, model, draws);
  if (absl::Status init = round->Init(params_.domain, request.epoch, options_, self());
      !init.ok()) {
    // The draws were too few for the request (e.g. fewer validator draws than k).
    return absl::FailedPreconditionError(
        absl::StrCat("the echelon cannot serve this request: ", init.message()));
  }
  {
    std::lock_guard lock(mu_);
    if (rounds_.count(request_id) != 0) {
      return absl::AlreadyExistsError(
          absl::StrCat("a round for request ", crypto::ToHex(request_id), " is running"));
    }
  }
  if (journal_it) {
    consensus::Encoder e;
    consensus::EncodeRequest(request, e);
    e.Raw(client_signature);
    RETURN_IF_ERROR(deps_.journal->RecordAccepted(request_id, e.bytes()));
  }
  // An entry node in the draws (member, backup or referee) computes the output itself: it may not
  // be shown another member's before the round is decided. Only an entry outside the draws
  // relays a member's stream.
  if (consensus::IsDrawn(draws, self())) {
    // Start at once so that the client's first token does not wait for the round's set-up.
    bool started = false;
    auto own = executions_.GetOrStart(request_id, request, *model.engine, &started);
    if (!own.ok()) {
      (void)deps_.journal->SetState(request_id, journal::RequestState::kFailed,
                                    own.status().ToString());
      return own.status();
    }
    if (started) Count([](PeerStats& s) { ++s.executions; });
    round->set_own(*own);
  }
  {
    std::lock_guard lock(mu_);
    rounds_[request_id] = round;
  }
  (void)deps_.journal->SetState(request_id, journal::RequestState::kExecuting);
  Count([](PeerStats& s) { ++s.rounds_started; });
  log_->info("round {}: n={} committee [{}] epoch {}", ShortHex(request_id), draws.committee.size(),
             absl::StrJoin(draws.committee, ", ",
                           [](std::string* out, const Address& m) { out->append(Short(m)); }),
             request.epoch);
  if (!TrackThread([round] { round->Drive(); })) {
    RoundEnded(request_id);  // the callers release the nonce claim of a round that did not start
    return absl::UnavailableError("the node is shutting down (the request stays journaled)");
  }
  return round;
}

absl::StatusOr<bool> ConsensusNodeImpl::RevealSalt(const Hash256& request_id,
                                                   const consensus::XvSalt& salt) {
  std::shared_ptr<EntryRound> round = ActiveRound(request_id);
  if (round == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("no running round for request ", crypto::ToHex(request_id), " on this node"));
  }
  return round->RevealSalt(salt);
}

absl::StatusOr<int> ConsensusNodeImpl::ResumeJournaled() {
  ASSIGN_OR_RETURN(std::vector<journal::RequestRecord> records,
                   deps_.journal->UnfinishedRequests());
  int started = 0;
  for (const journal::RequestRecord& r : records) {
    consensus::Decoder d(r.request_bytes);
    auto request = consensus::DecodeRequest(d);
    crypto::Signature sig{};
    absl::Status bad;
    if (!request.ok()) {
      bad = request.status();
    } else {
      bad = d.Raw("client signature", sig);
      if (bad.ok()) bad = d.ExpectEnd("journaled request");
    }
    if (!bad.ok()) {
      (void)deps_.journal->SetState(r.request_id, journal::RequestState::kFailed,
                                    absl::StrCat("journal entry unreadable: ", bad.message()));
      continue;
    }
    std::string reason;
    auto checked = CheckRequest(*request, sig, &reason);
    if (!checked.ok()) {
      log_->warn("round {}: not resumed: {}", ShortHex(r.request_id), checked.status().ToString());
      (void)deps_.journal->SetState(r.request_id, journal::RequestState::kFailed,
                                    checked.status().ToString());
      continue;
    }
    // Claimed before the round starts, as in Submit: a round that fails at once releases it.
    RestoreNonceClaim(*request, r.request_id);
    auto round = StartRound(*request, sig, r.request_id, *checked->model, false);
    if (!round.ok()) {
      log_->warn("round {}: not resumed: {}", ShortHex(r.request_id), round.status().ToString());
      (void)deps_.journal->SetState(r.request_id, journal::RequestState::kFailed,
                                    round.status().ToString());
      ReleaseNonceClaim(*request, r.request_id);
      continue;
    }
    ++started;
  }
  // Certified requests whose settlement is still queued hold their nonce and reserve their fee
  // until the outbox settles them (ReleaseSettledClaims then sees it in the journal).
  ASSIGN_OR_RETURN(const size_t unsettled, deps_.journal->CountUnsettled());
  if (unsettled > 0) {
    ASSIGN_OR_RETURN(std::vector<journal::SettlementRecord> pending,
                     deps_.journal->UnsettledCertificates(unsettled));
    for (const journal::SettlementRecord& s : pending) {
      RestoreNonceClaim(s.item.certificate.request, s.request_id);
    }
  }
  if (started > 0) log_->info("resumed {} journaled round(s)", started);
  return started;
}

void ConsensusNodeImpl::Shutdown(milliseconds deadline) {
  shutting_down_ = true;
  std::vector<std::shared_ptr<EntryRound>> rounds;
  {
    std::lock_guard lock(mu_);
    for (auto& [id, r] : rounds_) rounds.push_back(r);
  }
  const int64_t stop_at = SteadyMs() + deadline.count();
  for (auto& r : rounds) r->StopBy(stop_at);
  executions_.Shutdown();
  std::unique_lock lock(mu_);
  threads_done_.wait(lock, [&] { return live_threads_ == 0; });
  threads_closed_ = true;
}

PeerStats ConsensusNodeImpl::stats() const {
  std::lock_guard lock(stats_mu_);
  return stats_;
}

std::vector<absl::StatusOr<crypto::Signature>> ConsensusNodeImpl::Cosign(
    std::span<const ledger::Cosigner::Request> requests) {
  constexpr size_t kParallel = 16;
  std::vector<absl::StatusOr<crypto::Signature>> out(requests.size(),
                                                     absl::UnavailableError("not asked"));
  // At most kParallel calls at once, each thread taking the next member as it finishes one, so a
  // slow member holds up no other.
  std::atomic<size_t> next{0};
  std::vector<std::thread> workers;
  for (size_t w = 0; w < std::min(kParallel, requests.size()); ++w) {
    workers.emplace_back([this, &requests, &out, &next] {
      for (size_t k = next++; k < requests.size(); k = next++) out[k] = CosignOne(requests[k]);
    });
  }
  for (std::thread& t : workers) t.join();
  return out;
}

absl::StatusOr<crypto::Signature> ConsensusNodeImpl::CosignOne(
    const ledger::Cosigner::Request& request) {
  if (shutting_down()) return absl::UnavailableError("the consensus runtime is shutting down");
  if (request.member == self()) return CosignOwn(request.entries);
  ASSIGN_OR_RETURN(std::shared_ptr<v1::Peer::Stub> stub, StubFor(request.member));
  v1::PeerMessage msg;
  v1::CosignCall* call = msg.mutable_cosign();
  for (const consensus::CosignEntry& e : request.entries) {
    call->add_digests(e.digest.data(), e.digest.size());
    call->add_signatures(e.signature.data(), e.signature.size());
  }
  const v1::SignedMessage signed_msg = Sign(std::move(msg), kCosign);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       milliseconds(options_.peer_call_timeout_ms));
  v1::CosignResponse response;
  const grpc::Status s = stub->Cosign(&context, signed_msg, &response);
  if (!s.ok()) {
    Count([](PeerStats& st) { ++st.peer_call_errors; });
    return absl::Status(
        static_cast<absl::StatusCode>(s.error_code()),
        absl::StrCat("Peer.Cosign to ", Short(request.member), ": ", s.error_message()));
  }
  crypto::Signature signature{};
  if (!CopyBytes(response.signature(), &signature)) {
    return absl::DataLossError(absl::StrCat("Peer.Cosign to ", Short(request.member),
                                            ": the answer is not a 65-byte signature"));
  }
  return signature;
}

// ---------------------------------------------------------------------------------------------
// EntryRound

absl::Status EntryRound::Init(const consensus::Domain& domain, uint64_t epoch,
                              const ConsensusOptions& o, const Address& self) {
  self_ = self;
  consensus::RoundInputs in;
  in.domain = domain;
  in.epoch = epoch;
  in.echelon_id = model_.echelon_id;
  in.request = request_;
  in.client_signature = client_signature_;
  in.draws = draws_;
  in.member_timeout_ms = o.member_timeout_ms;
  in.reattest_timeout_ms = o.reattest_timeout_ms;
  in.referee_timeout_ms = o.referee_timeout_ms;
  in.salt_timeout_ms = o.salt_timeout_ms;
  ASSIGN_OR_RETURN(consensus::Round round, consensus::Round::Make(std::move(in)));
  round_.emplace(std::move(round));
  return absl::OkStatus();
}

RoundHandle::Wait EntryRound::Next(engine::StreamEvent* token, milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  if (own_) {
    const Execution::Wait w = own_->Next(read_index_, token, timeout);
    if (w == Execution::Wait::kEvent) {
      ++read_index_;
      return Wait::kToken;
    }
    if (w == Execution::Wait::kTimeout) return Wait::kTimeout;
  }
  std::unique_lock lock(mu_);
  while (true) {
    if (!own_ && read_index_ < relayed_.size()) {
      *token = relayed_[read_index_++];
      return Wait::kToken;
    }
    if (provisional_.has_value() && !provisional_read_) {
      provisional_read_ = true;
      return Wait::kProvisional;
    }
    if (finished_) return Wait::kDone;
    if (cv_.wait_until(lock, deadline) == std::cv_status::timeout) {
      if (!own_ && read_index_ < relayed_.size()) continue;
      if (provisional_.has_value() && !provisional_read_) continue;
      return finished_ ? Wait::kDone : Wait::kTimeout;
    }
  }
}

void EntryRound::Deliver(const Attestation& attestation) {
  {
    std::lock_guard lock(mu_);
    inbox_.push_back(attestation);
  }
  cv_.notify_all();
}

void EntryRound::StopBy(int64_t deadline_steady_ms) {
  {
    std::lock_guard lock(mu_);
    if (!stop_at_.has_value() || deadline_steady_ms < *stop_at_) stop_at_ = deadline_steady_ms;
  }
  cv_.notify_all();
}

absl::StatusOr<bool> EntryRound::RevealSalt(const consensus::XvSalt& salt) {
  bool drawn = false;
  {
    std::lock_guard lock(mu_);
    if (finished_ || !awaiting_salt_ || !provisional_.has_value()) {
      return absl::FailedPreconditionError(
          "the round is not waiting for a salt (not yet provisional, or already decided)");
    }
    if (consensus::XvSaltHash(salt) != request_.security.salt_hash) {
      return absl::PermissionDeniedError("salt: does not hash to the request's salt_hash");
    }
    drawn = consensus::XvCheckDrawn(salt, provisional_->attestation, request_.security.p_micro);
    salt_inbox_ = salt;
    awaiting_salt_ = false;
  }
  cv_.notify_all();
  return drawn;
}

void EntryRound::Drive() {
  Perform(round_->Start(SteadyMs()));
  while (!finished_) {
    std::vector<consensus::RoundAction> actions;
    std::deque<Attestation> inbox;
    std::optional<consensus::XvSalt> salt;
    bool stop = false;
    {
      std::unique_lock lock(mu_);
      const std::optional<int64_t> next = round_->NextDeadline();
      auto ready = [&] {
        const int64_t now = SteadyMs();
        return !inbox_.empty() || salt_inbox_.has_value() || (next.has_value() && now >= *next) ||
               (stop_at_.has_value() && now >= *stop_at_);
      };
      while (!ready()) {
        int64_t wake = SteadyMs() + 1000;
        if (next.has_value()) wake = std::min(wake, *next);
        if (stop_at_.has_value()) wake = std::min(wake, *stop_at_);
        cv_.wait_for(lock, milliseconds(std::max<int64_t>(1, wake - SteadyMs())));
      }
      inbox.swap(inbox_);
      salt.swap(salt_inbox_);
      stop = stop_at_.has_value() && SteadyMs() >= *stop_at_;
    }
    const int64_t now = SteadyMs();
    if (salt.has_value()) {
      for (auto& act : round_->OnSaltRevealed(*salt, now)) actions.push_back(std::move(act));
    }
    for (const Attestation& a : inbox) {
      const consensus::RoundCounters before = round_->counters();
      auto out = round_->OnAttestation(a, now);
      const consensus::RoundCounters& after = round_->counters();
      if (after.accepted > before.accepted) {
        node_->Count([](PeerStats& s) { ++s.attestations_accepted; });
      } else if (after.foreign > before.foreign) {
        node_->Reject("foreign");
      } else if (after.invalid > before.invalid) {
        node_->Reject("invalid");
      } else if (after.not_participant > before.not_participant) {
        node_->Reject("not_participant");
      } else if (after.duplicate > before.duplicate) {
        // Benign: a member's attestation arrives both as its Execute answer and as its
        // broadcast.
      } else if (after.equivocating > before.equivocating) {
        node_->Reject("equivocating");
      } else if (after.late > before.late || after.ignored_update > before.ignored_update) {
        node_->Reject("late");
      }
      for (auto& act : out) actions.push_back(std::move(act));
    }
    const std::optional<int64_t> next = round_->NextDeadline();
    if (next.has_value() && now >= *next) {
      for (auto& act : round_->OnTick(now)) actions.push_back(std::move(act));
    }
    Perform(std::move(actions));
    if (!finished_ && stop) {
      (void)node_->journal();  // the request stays journaled: ResumeJournaled finishes it
      Finish(absl::UnavailableError("the node shut down before the round finished; it resumes "
                                    "after a restart"),
             "shutdown");
    }
  }
  // Ended: stop what is still in flight and wait for the call threads.
  std::unique_lock lock(mu_);
  for (auto& c : calls_) c->TryCancel();
  cv_.wait(lock, [&] { return live_calls_ == 0; });
  lock.unlock();
  node_->RoundEnded(request_id_);
}

void EntryRound::Finish(absl::Status status, std::string detail) {
  // Certified (OK) and dispute-decided (ABORTED) rounds settle on the ledger, which closes the
  // nonce; the others (UNAVAILABLE: no members left or shutdown, INTERNAL) settle nothing.
  const bool settles = status.ok() || absl::IsAborted(status);
  {
    std::lock_guard lock(mu_);
    if (finished_) return;
    // Before the client can see the outcome, so that it may reuse the nonce at once. (Lock
    // order: a round's mu_, then the node's; the node never takes a round's lock under its own.)
    if (!settles) node_->ReleaseNonceClaim(request_, request_id_);
    outcome_.status = std::move(status);
    outcome_.detail = std::move(detail);
    finished_ = true;
  }
  cv_.notify_all();
}

void EntryRound::Certify(const consensus::Certificate& certificate,
                         const std::optional<consensus::XvCertificate>& xv) {
  auto log = GetLogger("consensus");
  const std::string rid = ShortHex(request_id_);
  auto output = OutputFor(certificate);
  if (!output.ok()) {
    (void)node_->journal().SetState(request_id_, journal::RequestState::kFailed,
                                    output.status().ToString());
    node_->Count([](PeerStats& s) { ++s.rounds_failed; });
    Finish(absl::InternalError(absl::StrCat("certified, but the output could not be obtained: ",
                                            output.status().message())),
           "no output");
    return;
  }
  node_->Count([](PeerStats& s) { ++s.rounds_certified; });
  std::string how =
      absl::StrCat("certified by [",
                   absl::StrJoin(certificate.committee, ", ",
                                 [](std::string* out, const Address& m) { out->append(Short(m)); }),
                   "]");
  if (xv.has_value()) {
    how = xv->unrevealed() ? "executor only (the salt was never revealed)"
          : xv->validators.empty()
              ? "executor only (the coin drew no check)"
              : absl::StrCat("executor and ", xv->validators.size(), " validator(s) agree");
  }
  {
    std::lock_guard lock(mu_);
    outcome_.certificate = certificate;
    outcome_.xv_certificate = xv;
    outcome_.output = *output;
    outcome_.prompt_tokens = static_cast<int>(request_.prompt_token_ids.size());
  }
  // The client gets the certificate before it is journaled for settlement: that fsync is this
  // node's business (its fee), not the client's latency. If the node dies in between, the request
  // is still journaled as accepted, so the restart re-runs the round and settles it.
  Finish(absl::OkStatus(), how);
  log->info("round {}: {}", rid, how);
  ledger::SettlementItem item{certificate, *output};
  item.xv = xv;
  absl::Status journaled = node_->journal().AddCertificate(item);
  if (!journaled.ok()) {
    log->error("round {}: journaling the certificate failed (a restart settles it): {}", rid,
               journaled.ToString());
  } else if (node_->outbox() != nullptr) {
    node_->outbox()->Notify();
  }
}

void EntryRound::Perform(std::vector<consensus::RoundAction> actions) {
  auto log = GetLogger("consensus");
  const std::string rid = ShortHex(request_id_);
  for (consensus::RoundAction& action : actions) {
    if (auto* a = std::get_if<consensus::SendExecute>(&action)) {
      bool relay = false;
      if (!own_) {
        std::lock_guard lock(mu_);
        if (!relay_chosen_) relay = relay_chosen_ = true;
      }
      StartCall(a->member, a->committee, false, relay);
    } else if (auto* u = std::get_if<consensus::UpdateCommittee>(&action)) {
      log->info("round {}: committee changed; {} re-attests", rid, Short(u->member));
      StartCall(u->member, u->committee, false, false);
    } else if (auto* r = std::get_if<consensus::StartReferees>(&action)) {
      log->warn("round {}: members disagree; {} referees execute", rid, r->referees.size());
      for (const Address& referee : r->referees) StartCall(referee, r->committee, true, false);
    } else if (auto* e = std::get_if<consensus::ReportEquivocation>(&action)) {
      auto slashed = node_->ledger().ReportEquivocation(self_, e->first, e->second);
      if (slashed.ok()) {
        node_->Count([](PeerStats& s) { ++s.equivocations_reported; });
        log->warn("round {}: {} equivocated; slashed {}", rid, Short(e->first.member),
                  slashed->slashed.ToDecimal());
      } else if (!absl::IsAlreadyExists(slashed.status())) {
        log->warn("round {}: reporting equivocation failed: {}", rid, slashed.status().ToString());
      }
    } else if (auto* d = std::get_if<consensus::DeliverCertificate>(&action)) {
      Certify(d->certificate, std::nullopt);
    } else if (auto* p = std::get_if<consensus::DeliverProvisional>(&action)) {
      // Cross-validation: the executor attested. The client gets its result now, checks it, and
      // reveals the salt that decides the coin.
      auto output = OutputMatching(round_->committee(), p->attestation.commitment, false);
      if (!output.ok() && own_ && own_->WaitDone(milliseconds(0)) && own_->status().ok()) {
        output = own_->output();  // the executor's C does not match what we computed: say so
      }
      {
        std::lock_guard lock(mu_);
        provisional_ = Provisional{p->attestation, output.ok() ? *output : ConsensusOutput{}};
        awaiting_salt_ = true;
      }
      cv_.notify_all();
      log->info("round {}: provisional result of {}; waiting for the client's salt", rid,
                Short(p->attestation.member));
    } else if (auto* v = std::get_if<consensus::StartValidators>(&action)) {
      log->info("round {}: the coin drew a check; {} validator(s) execute", rid,
                v->validators.size());
      for (const Address& validator : v->validators) {
        StartCall(validator, v->committee, true, false);
      }
    } else if (auto* x = std::get_if<consensus::DeliverXvCertificate>(&action)) {
      Certify(x->certificate.base, x->certificate);
    } else if (auto* res = std::get_if<consensus::DisputeResolved>(&action)) {
      ledger::DisputeEvidence evidence;
      evidence.request = request_;
      evidence.client_signature = client_signature_;
      evidence.committee = round_->committee();
      evidence.member_attestations = res->member_attestations;
      evidence.referee_attestations = res->referee_attestations;
      if (own_ && own_->WaitDone(milliseconds(0)) && own_->status().ok()) {
        const ConsensusOutput& mine = own_->output();
        if (consensus::Commitment(consensus::OutputProofs(request_id_, mine, evidence.committee)) ==
            res->commitment) {
          evidence.output = mine;
        }
      }
      auto settled = node_->ledger().SettleDispute(self_, evidence);
      std::string detail = absl::StrCat(
          "dispute resolved by ", res->majority_referees.size(), " of ",
          res->majority_referees.size() + res->dissenting_referees.size(),
          " referees; members on the losing side: [",
          absl::StrJoin(res->losers, ", ",
                        [](std::string* out, const Address& m) { out->append(Short(m)); }),
          "]");
      if (settled.ok()) {
        node_->Count([](PeerStats& s) { ++s.slashings_submitted; });
        absl::StrAppend(
            &detail, "; slashed on the ledger: [",
            absl::StrJoin(settled->slashed, ", ",
                          [](std::string* out, const Address& m) { out->append(Short(m)); }),
            "] ", settled->slashed_total.ToDecimal(), " in total");
      } else {
        absl::StrAppend(&detail, "; the ledger refused the evidence: ", settled.status().message());
      }
      log->warn("round {}: {}", rid, detail);
      node_->Count([](PeerStats& s) { ++s.rounds_disputed; });
      (void)node_->journal().SetState(request_id_, journal::RequestState::kFailed, detail);
      if (evidence.output.has_value()) {
        std::lock_guard lock(mu_);
        outcome_.output = *evidence.output;
      }
      Finish(absl::AbortedError(detail), detail);
    } else if (auto* f = std::get_if<consensus::Fail>(&action)) {
      const std::string detail =
          absl::StrCat(consensus::FailReasonName(f->reason), ": ", f->detail);
      log->warn("round {}: failed: {}", rid, detail);
      node_->Count([](PeerStats& s) { ++s.rounds_failed; });
      (void)node_->journal().SetState(request_id_, journal::RequestState::kFailed, detail);
      Finish(f->reason == consensus::FailReason::kNoBackups ? absl::UnavailableError(detail)
                                                            : absl::AbortedError(detail),
             detail);
    }
  }
}

void EntryRound::StartCall(const Address& target, std::vector<Address> committee, bool referee,
                           bool stream_tokens) {
  auto self = shared_from_this();
  auto context = std::make_shared<grpc::ClientContext>();
  {
    std::lock_guard lock(mu_);
    if (finished_) return;
    ++live_calls_;
    calls_.push_back(context);
  }
  auto done = [self] {
    {
      std::lock_guard lock(self->mu_);
      --self->live_calls_;
    }
    self->cv_.notify_all();
  };
  if (target == self_) {
    const bool started =
        node_->TrackThread([self, committee = std::move(committee), referee, done] {
          std::string reason;
          absl::StatusOr<Attestation> a;
          auto assignment = self->node_->Assign(self->request_, self->client_signature_, committee,
                                                referee, &reason);
          if (assignment.ok()) {
            a = self->node_->AttestTo(*assignment, self->request_, committee, referee);
          } else {
            a = assignment.status();
          }
          if (a.ok()) {
            self->Deliver(*a);
            self->node_->Broadcast(*a, committee);
          } else {
            GetLogger("consensus")
                ->warn("round {}: this node's own execution failed: {}",
                       ShortHex(self->request_id_), a.status().ToString());
          }
          done();
        });
    if (!started) done();
    return;
  }
  const bool started = node_->TrackThread(
      [self, target, committee = std::move(committee), referee, stream_tokens, context, done] {
        self->CallRemote(target, committee, referee, stream_tokens, context);
        done();
      });
  if (!started) done();
}

v1::PeerMessage EntryRound::ExecuteMessage(const std::vector<Address>& committee, bool referee,
                                           bool stream_tokens) const {
  v1::PeerMessage msg;
  v1::ExecuteCall* call = msg.mutable_execute();
  consensus::Encoder e;
  consensus::EncodeRequest(request_, e);
  call->set_request(e.bytes().data(), e.bytes().size());
  call->set_client_signature(client_signature_.data(), client_signature_.size());
  for (const Address& m : committee) call->add_committee(m.data(), m.size());
  call->set_referee(referee);
  call->set_stream_tokens(stream_tokens);
  return msg;
}

void EntryRound::CallRemote(const Address& target, const std::vector<Address>& committee,
                            bool referee, bool stream_tokens,
                            std::shared_ptr<grpc::ClientContext> first_context) {
  auto log = GetLogger("consensus");
  const ConsensusOptions& o = node_->options();
  const v1::PeerMessage msg = ExecuteMessage(committee, referee, stream_tokens);
  // A member that fails fast (not yet listening, restarting) is retried a few times; one that is
  // gone for good is replaced by the round's timeout.
  std::shared_ptr<grpc::ClientContext> context = first_context;
  for (int attempt = 0; attempt < 4; ++attempt) {
    {
      std::lock_guard lock(mu_);
      if (finished_) return;
      if (attempt > 0) {
        context = std::make_shared<grpc::ClientContext>();
        calls_.push_back(context);
      }
    }
    auto stub = node_->StubFor(target);
    if (!stub.ok()) {
      log->warn("round {}: no endpoint for {}: {}", ShortHex(request_id_), Short(target),
                stub.status().ToString());
      return;
    }
    const int64_t budget = std::max(o.member_timeout_ms, o.referee_timeout_ms) + 10'000;
    context->set_deadline(std::chrono::system_clock::now() + milliseconds(budget));
    const v1::SignedMessage signed_msg = node_->Sign(msg, kExecute);
    auto reader = (*stub)->Execute(context.get(), signed_msg);
    v1::ExecuteResponse response;
    std::optional<Attestation> attestation;
    uint64_t finish_reason = 0;
    while (reader->Read(&response)) {
      if (response.has_tokens() && stream_tokens) {
        std::lock_guard lock(mu_);
        AppendChunk(response.tokens(), &relayed_);
        cv_.notify_all();
      } else if (!response.attestation().empty()) {
        const std::string& b = response.attestation();
        auto decoded = consensus::DecodeAttestation(
            std::span(reinterpret_cast<const uint8_t*>(b.data()), b.size()));
        if (decoded.ok()) {
          attestation = *decoded;
          finish_reason = response.finish_reason();
        } else {
          node_->Reject("malformed");
        }
      }
    }
    const grpc::Status status = reader->Finish();
    if (attestation.has_value()) {
      if (stream_tokens) {
        std::lock_guard lock(mu_);
        relayed_output_ = OutputOf(relayed_, finish_reason);
      }
      Deliver(*attestation);
      return;
    }
    node_->Count([](PeerStats& s) { ++s.peer_call_errors; });
    log->info("round {}: Execute on {} failed: {} ({})", ShortHex(request_id_), Short(target),
              status.error_message(), static_cast<int>(status.error_code()));
    if (status.error_code() != grpc::StatusCode::UNAVAILABLE &&
        status.error_code() != grpc::StatusCode::RESOURCE_EXHAUSTED) {
      return;
    }
    if (stream_tokens) {
      std::lock_guard lock(mu_);
      relayed_.clear();  // the retry streams from the start again
    }
    std::this_thread::sleep_for(milliseconds(250 << attempt));
  }
}

absl::StatusOr<ConsensusOutput> EntryRound::OutputFor(const consensus::Certificate& certificate) {
  return OutputMatching(certificate.committee, certificate.commitment, true);
}

absl::StatusOr<ConsensusOutput> EntryRound::OutputMatching(const std::vector<Address>& committee,
                                                           const Hash256& commitment, bool fetch) {
  auto matches = [&](const ConsensusOutput& o) {
    return consensus::Commitment(consensus::OutputProofs(request_id_, o, committee)) == commitment;
  };
  // An entry in the draws computes its own output; with n = 1 the member's attestation can
  // certify the round before that finishes, so wait for it (it is running on our engine).
  if (own_ && own_->WaitDone(milliseconds(node_->options().member_timeout_ms)) &&
      own_->status().ok() && matches(own_->output())) {
    return own_->output();
  }
  {
    std::lock_guard lock(mu_);
    if (relayed_output_.has_value() && matches(*relayed_output_)) return *relayed_output_;
  }
  if (!fetch) return absl::UnavailableError("no output at hand matches C");
  // Not drawn and no complete relay (the relayed member was replaced): ask a member to replay
  // its tokens through Execute, which it answers from its cache (this node is outside the draws,
  // so the member releases them).
  for (const Address& member : committee) {
    auto stub = node_->StubFor(member);
    if (!stub.ok()) continue;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         milliseconds(node_->options().member_timeout_ms));
    auto reader =
        (*stub)->Execute(&context, node_->Sign(ExecuteMessage(committee, false, true), kExecute));
    v1::ExecuteResponse response;
    std::vector<engine::StreamEvent> events;
    std::optional<uint64_t> finish_reason;
    while (reader->Read(&response)) {
      if (response.has_tokens()) {
        AppendChunk(response.tokens(), &events);
      } else if (!response.attestation().empty()) {
        finish_reason = response.finish_reason();
      }
    }
    (void)reader->Finish();
    if (!finish_reason.has_value()) continue;
    const ConsensusOutput out = OutputOf(events, *finish_reason);
    if (matches(out)) {
      std::lock_guard lock(mu_);
      relayed_ = std::move(events);
      return out;
    }
  }
  return absl::UnavailableError("no member released an output that matches C");
}

// ---------------------------------------------------------------------------------------------
// PeerService

grpc::Status PeerService::Execute(grpc::ServerContext* context, const v1::SignedMessage* in,
                                  grpc::ServerWriter<v1::ExecuteResponse>* writer) {
  auto opened = node_->OpenFrom(*in, kExecute);
  if (!opened.ok()) return ToGrpc(opened.status());
  const v1::ExecuteCall& call = opened->message.execute();
  auto decoded = DecodeExecuteCall(call);
  if (!decoded.ok()) {
    node_->Reject("malformed");
    return ToGrpc(decoded.status());
  }
  const ConsensusRequest* request = &decoded->request;
  const crypto::Signature& client_signature = decoded->client_signature;
  const std::vector<Address>& committee = decoded->committee;
  std::string reason;
  auto assignment = node_->Assign(*request, client_signature, committee, call.referee(), &reason);
  if (!assignment.ok()) {
    if (!reason.empty()) node_->Reject(reason);
    return ToGrpc(assignment.status());
  }
  const std::shared_ptr<Execution>& execution = assignment->execution;
  if (call.stream_tokens()) {
    // Only a node outside the draws may see the output before the round is decided: a member,
    // backup or referee that saw it could attest it without computing (DESIGN §4.5). An entry
    // node in the draws computes its own output instead.
    if (consensus::IsDrawn(assignment->draws, opened->sender)) {
      node_->Reject("output_not_released");
      return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                          "Execute: tokens are not streamed to a node drawn for this request");
    }
    // The tokens as they are produced (the attestation can only follow the whole output).
    engine::StreamEvent ev;
    for (size_t i = 0;;) {
      const Execution::Wait w = execution->Next(i, &ev, milliseconds(200));
      if (context->IsCancelled()) return grpc::Status::CANCELLED;
      if (w == Execution::Wait::kDone) break;
      if (w == Execution::Wait::kTimeout) continue;
      ++i;
      v1::ExecuteResponse r;
      v1::TokenChunk* chunk = r.mutable_tokens();
      chunk->add_token_ids(ev.token_id);
      v1::GeneratedToken* t = chunk->add_tokens();
      t->set_token_id(ev.token_id);
      t->set_logprob(ev.logprob);
      chunk->set_text(ev.text);
      if (!writer->Write(r)) return grpc::Status::CANCELLED;
    }
  }
  auto attestation = node_->AttestTo(*assignment, *request, committee, call.referee());
  if (!attestation.ok()) return ToGrpc(attestation.status());
  v1::ExecuteResponse last;
  const std::vector<uint8_t> bytes = consensus::EncodeAttestation(*attestation);
  last.set_attestation(bytes.data(), bytes.size());
  last.set_finish_reason(static_cast<uint64_t>(execution->output().finish_reason));
  writer->Write(last);
  if (!call.referee()) node_->Broadcast(*attestation, committee);
  return grpc::Status::OK;
}

grpc::Status PeerService::Attest(grpc::ServerContext*, const v1::SignedMessage* in,
                                 v1::AttestResponse* out) {
  auto opened = node_->OpenFrom(*in, kAttest);
  if (!opened.ok()) return ToGrpc(opened.status());
  const std::string& b = opened->message.attest().attestation();
  auto a =
      consensus::DecodeAttestation(std::span(reinterpret_cast<const uint8_t*>(b.data()), b.size()));
  if (!a.ok()) {
    node_->Reject("malformed");
    return ToGrpc(a.status());
  }
  if (absl::Status s = consensus::VerifyAttestation(*a, node_->domain(), a->epoch); !s.ok()) {
    node_->Reject("invalid");
    out->set_accepted(false);
    out->set_reason(std::string(s.message()));
    return grpc::Status::OK;
  }
  std::string reason;
  const bool kept = node_->StoreAttestation(*a, &reason);
  if (auto round = node_->ActiveRound(a->request_id)) round->Deliver(*a);
  out->set_accepted(kept);
  if (!kept) {
    node_->Reject(reason);
    out->set_reason(reason);
  }
  return grpc::Status::OK;
}

grpc::Status PeerService::Cosign(grpc::ServerContext*, const v1::SignedMessage* in,
                                 v1::CosignResponse* out) {
  auto opened = node_->OpenFrom(*in, kCosign);
  if (!opened.ok()) return ToGrpc(opened.status());
  const v1::CosignCall& call = opened->message.cosign();
  const size_t n = static_cast<size_t>(call.digests_size());
  if (n == 0 || n > consensus::kMaxCosignEntries || call.signatures_size() != call.digests_size()) {
    node_->Reject("malformed");
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("cosign: 1..", consensus::kMaxCosignEntries,
                                     " digests, each with one signature"));
  }
  std::vector<consensus::CosignEntry> entries(n);
  for (size_t i = 0; i < n; ++i) {
    if (!CopyBytes(call.digests(static_cast<int>(i)), &entries[i].digest) ||
        !CopyBytes(call.signatures(static_cast<int>(i)), &entries[i].signature)) {
      node_->Reject("malformed");
      return grpc::Status(
          grpc::StatusCode::INVALID_ARGUMENT,
          absl::StrCat("cosign entry ", i, ": a digest is 32 bytes and a signature 65"));
    }
  }
  absl::StatusOr<crypto::Signature> cosignature = node_->CosignOwn(entries);
  if (!cosignature.ok()) {
    node_->Reject(absl::IsPermissionDenied(cosignature.status()) ? "not_own_attestation"
                                                                 : "malformed");
    return ToGrpc(cosignature.status());
  }
  out->set_signature(cosignature->data(), cosignature->size());
  return grpc::Status::OK;
}

grpc::Status PeerService::GetAttestations(grpc::ServerContext*, const v1::SignedMessage* in,
                                          v1::GetAttestationsResponse* out) {
  auto opened = node_->OpenFrom(*in, kGetAttestations);
  if (!opened.ok()) return ToGrpc(opened.status());
  const v1::GetAttestationsCall& call = opened->message.get_attestations();
  Hash256 request_id{};
  if (!CopyBytes(call.request_id(), &request_id)) {
    node_->Reject("malformed");
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "request_id must be 32 bytes");
  }
  for (const Attestation& a : node_->AttestationsFor(request_id)) {
    const std::vector<uint8_t> bytes = consensus::EncodeAttestation(a);
    out->add_attestations(bytes.data(), bytes.size());
  }
  if (!call.caller_attestation().empty()) {
    const std::string& b = call.caller_attestation();
    auto a = consensus::DecodeAttestation(
        std::span(reinterpret_cast<const uint8_t*>(b.data()), b.size()));
    // The caller proves it has committed: its own valid attestation for this request.
    if (a.ok() && a->member == opened->sender && a->request_id == request_id &&
        consensus::VerifyAttestation(*a, node_->domain(), a->epoch).ok()) {
      if (auto execution = node_->executions().Find(request_id);
          execution && execution->WaitDone(milliseconds(0)) && execution->status().ok()) {
        out->set_has_output(true);
        for (uint32_t id : execution->output().token_ids) out->add_output_ids(id);
        out->set_finish_reason(static_cast<uint64_t>(execution->output().finish_reason));
      }
    } else {
      node_->Reject("invalid");
    }
  }
  return grpc::Status::OK;
}

// ---------------------------------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<ConsensusNode>> ConsensusNode::Make(Dependencies deps,
                                                                   ConsensusOptions options) {
  if (deps.key == nullptr || deps.ledger == nullptr || deps.journal == nullptr) {
    return absl::InvalidArgumentError("consensus: key, ledger and journal are required");
  }
  for (const ServedModel& m : deps.models) {
    if (m.engine == nullptr) return absl::InvalidArgumentError("consensus: a model has no engine");
  }
  if (options.max_committee_size < 1 || options.max_committee_size > consensus::kMaxCommitteeSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("consensus: max_committee_size must be 1..", consensus::kMaxCommitteeSize));
  }
  if (options.member_timeout_ms <= 0 || options.reattest_timeout_ms <= 0 ||
      options.referee_timeout_ms <= 0 || options.peer_call_timeout_ms <= 0 ||
      options.replay_window_ms <= 0 || options.output_cache_entries == 0) {
    return absl::InvalidArgumentError("consensus: timeouts and the cache size must be positive");
  }
  ASSIGN_OR_RETURN(ledger::Params params, deps.ledger->GetParams());
  return std::unique_ptr<ConsensusNode>(
      new ConsensusNodeImpl(std::move(deps), std::move(options), std::move(params)));
}

}  // namespace atoma::peer
