#include "atoma/consensus/round.h"

#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace atoma::consensus {
namespace {

template <typename T>
bool Contains(const std::vector<T>& v, const T& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

}  // namespace

const char* RoundStateName(RoundState state) {
  switch (state) {
    case RoundState::kIdle:
      return "idle";
    case RoundState::kCollecting:
      return "collecting";
    case RoundState::kDisputing:
      return "disputing";
    case RoundState::kCertified:
      return "certified";
    case RoundState::kResolved:
      return "resolved";
    case RoundState::kFailed:
      return "failed";
    case RoundState::kAwaitingSalt:
      return "awaiting salt";
    case RoundState::kValidating:
      return "validating";
  }
  return "unknown";
}

const char* FailReasonName(FailReason reason) {
  switch (reason) {
    case FailReason::kNoBackups:
      return "no backups left";
    case FailReason::kNoReferees:
      return "no referees";
    case FailReason::kNoMajority:
      return "no majority";
    case FailReason::kValidatorsMissing:
      return "validators missing";
  }
  return "unknown";
}

absl::StatusOr<Round> Round::Make(RoundInputs inputs) {
  const uint64_t n = CommitteeSize(inputs.request.security);
  if (n == 0 || inputs.draws.committee.size() != n) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the request wants ", n, " members; the draws have ", inputs.draws.committee.size()));
  }
  if (inputs.draws.backups.size() > BackupCount(n)) {
    return absl::InvalidArgumentError(
        absl::StrCat(inputs.draws.backups.size(), " backups; certificates allow ", BackupCount(n)));
  }
  if (inputs.request.epoch != inputs.epoch) {
    return absl::InvalidArgumentError("the request is for another epoch");
  }
  std::vector<Address> all = inputs.draws.committee;
  all.insert(all.end(), inputs.draws.backups.begin(), inputs.draws.backups.end());
  all.insert(all.end(), inputs.draws.referees.begin(), inputs.draws.referees.end());
  std::sort(all.begin(), all.end());
  if (std::adjacent_find(all.begin(), all.end()) != all.end()) {
    return absl::InvalidArgumentError("a node appears twice among members, backups and referees");
  }
  if (inputs.member_timeout_ms <= 0 || inputs.reattest_timeout_ms <= 0 ||
      inputs.referee_timeout_ms <= 0 || inputs.salt_timeout_ms <= 0) {
    return absl::InvalidArgumentError("timeouts must be positive");
  }
  if (inputs.request.security.mode == SecurityMode::kCrossValidation &&
      inputs.draws.referees.size() < inputs.request.security.k) {
    // Such a round could never certify a drawn check: refuse the request instead.
    return absl::InvalidArgumentError(absl::StrCat("the request wants ", inputs.request.security.k,
                                                   " validators; the draws have ",
                                                   inputs.draws.referees.size()));
  }
  return Round(std::move(inputs));
}

Round::Round(RoundInputs inputs) : in_(std::move(inputs)) {
  request_id_ = RequestId(in_.request);
  n_ = in_.draws.committee.size();
  xv_ = in_.request.security.mode == SecurityMode::kCrossValidation;
  if (xv_) xv_draws_ = SplitXvDraws(in_.draws, in_.request.security.k);
}

bool Round::IsTerminal() const {
  return state_ == RoundState::kCertified || state_ == RoundState::kResolved ||
         state_ == RoundState::kFailed;
}

std::vector<Address> Round::committee() const {
  if (slots_.empty()) return in_.draws.committee;
  std::vector<Address> c;
  c.reserve(slots_.size());
  for (const Slot& s : slots_) c.push_back(s.member);
  return c;
}

std::vector<RoundAction> Round::Start(RoundTime now) {
  std::vector<RoundAction> out;
  if (state_ != RoundState::kIdle) return out;
  state_ = RoundState::kCollecting;
  for (const Address& m : in_.draws.committee) {
    slots_.push_back(Slot{m, now + in_.member_timeout_ms, std::nullopt});
  }
  const std::vector<Address> c = committee();
  for (size_t i = 0; i < n_; ++i) out.push_back(SendExecute{slots_[i].member, i, c});
  return out;
}

void Round::CheckEquivocation(const Attestation& a, std::vector<RoundAction>& out,
                              bool* equivocated, bool* duplicate) {
  *equivocated = false;
  *duplicate = false;
  auto [it, inserted] = first_.emplace(a.member, a);
  if (inserted) return;
  if (it->second == a) {
    *duplicate = true;
    return;
  }
  // A different C alone is a view update (SameOutputClaim); anything else is equivocation.
  if (!SameOutputClaim(it->second, a)) {
    *equivocated = true;
    if (!reported_[a.member]) {
      reported_[a.member] = true;
      out.push_back(ReportEquivocation{it->second, a});
    }
  }
}

std::vector<RoundAction> Round::OnAttestation(const Attestation& a, RoundTime now) {
  std::vector<RoundAction> out;
  if (state_ == RoundState::kIdle || IsTerminal()) {
    ++counters_.late;
    return out;
  }
  if (a.request_id != request_id_ || a.echelon_id != in_.echelon_id) {
    ++counters_.foreign;
    return out;
  }
  if (!VerifyAttestation(a, in_.domain, in_.epoch).ok()) {
    ++counters_.invalid;
    return out;
  }
  // Only nodes this round has asked to execute are remembered (bounds the memory a hostile
  // sender can make us use).
  auto slot_it = std::find_if(slots_.begin(), slots_.end(),
                              [&](const Slot& s) { return s.member == a.member; });
  auto ref_it = std::find_if(referees_.begin(), referees_.end(),
                             [&](const RefereeVote& r) { return r.referee == a.member; });
  auto val_it = std::find_if(validators_.begin(), validators_.end(),
                             [&](const RefereeVote& v) { return v.referee == a.member; });
  const bool replaced = Contains(replaced_, a.member);
  if (slot_it == slots_.end() && ref_it == referees_.end() && val_it == validators_.end() &&
      !replaced) {
    ++counters_.not_participant;
    return out;
  }
  bool equivocated = false;
  bool duplicate = false;
  CheckEquivocation(a, out, &equivocated, &duplicate);
  if (duplicate || (slot_it != slots_.end() && slot_it->attestation == a)) {
    ++counters_.duplicate;
    return out;
  }
  if (equivocated) {
    ++counters_.equivocating;
    if (state_ == RoundState::kCollecting && slot_it != slots_.end()) {
      // A proven cheat cannot be part of the certificate: replace it like a silent member.
      const size_t i = static_cast<size_t>(slot_it - slots_.begin());
      if (!Replace(i, now, out)) {
        FailRound(FailReason::kNoBackups, "a member equivocated and no backup was left", out);
      }
    } else if (state_ == RoundState::kDisputing && ref_it != referees_.end()) {
      ref_it->excluded = true;
      Tally(now, out);
    } else if (state_ == RoundState::kValidating && val_it != validators_.end()) {
      val_it->excluded = true;  // a proven cheat's check counts for nothing
      DecideValidation(now, out);
    }
    // An executor that equivocates after DeliverProvisional keeps its slot: the client already
    // holds the attestation the coin is over; the report gets it slashed.
    return out;
  }
  if (replaced) {
    ++counters_.late;
    return out;
  }
  if (slot_it != slots_.end()) {
    if (state_ != RoundState::kCollecting) {
      ++counters_.ignored_update;  // member slots are frozen once a dispute starts
      return out;
    }
    slot_it->attestation = a;
    ++counters_.accepted;
    Decide(now, out);
    return out;
  }
  if (val_it != validators_.end()) {
    // Validators vote once, and only while the check runs (frozen once a dispute starts).
    if (state_ != RoundState::kValidating || val_it->attestation.has_value() || val_it->excluded) {
      ++counters_.ignored_update;
      return out;
    }
    val_it->attestation = a;
    ++counters_.accepted;
    DecideValidation(now, out);
    return out;
  }
  // A referee, during a dispute (referees_ is empty before).
  if (ref_it->attestation.has_value() || ref_it->excluded) {
    ++counters_.ignored_update;
    return out;
  }
  ref_it->attestation = a;
  ++counters_.accepted;
  Tally(now, out);
  return out;
}

bool Round::Replace(size_t i, RoundTime now, std::vector<RoundAction>& out) {
  if (next_backup_ >= in_.draws.backups.size()) return false;
  replaced_.push_back(slots_[i].member);
  slots_[i] = Slot{in_.draws.backups[next_backup_++], now + in_.member_timeout_ms, std::nullopt};
  const std::vector<Address> c = committee();
  out.push_back(SendExecute{slots_[i].member, i, c});
  for (size_t j = 0; j < n_; ++j) {
    if (j != i) out.push_back(UpdateCommittee{slots_[j].member, c});
  }
  grace_until_ = now + in_.reattest_timeout_ms;
  return true;
}

void Round::FailRound(FailReason reason, std::string detail, std::vector<RoundAction>& out) {
  state_ = RoundState::kFailed;
  out.push_back(Fail{reason, std::move(detail), true});
}

void Round::Decide(RoundTime now, std::vector<RoundAction>& out) {
  if (state_ != RoundState::kCollecting) return;
  for (const Slot& s : slots_) {
    if (!s.attestation.has_value()) return;
  }
  std::vector<Hash256> proofs;
  proofs.reserve(n_);
  for (const Slot& s : slots_) proofs.push_back(s.attestation->proof);
  const Hash256 c = slots_[0].attestation->commitment;
  if (xv_) {
    // One executor: its p must hash to its C (else the attestation is self-inconsistent and only
    // referees can say whether its C is right). The provisional result goes out at once; the
    // coin is decided when the client reveals the salt, after this commitment.
    if (Commitment(proofs) != c) {
      StartDispute(now, out);
      return;
    }
    state_ = RoundState::kAwaitingSalt;
    salt_deadline_ = now + in_.salt_timeout_ms;
    out.push_back(DeliverProvisional{*slots_[0].attestation});
    return;
  }
  bool agree = Commitment(proofs) == c;
  for (const Slot& s : slots_) agree = agree && s.attestation->commitment == c;
  if (agree) {
    state_ = RoundState::kCertified;
    Certificate cert;
    cert.request = in_.request;
    cert.client_signature = in_.client_signature;
    cert.committee = committee();
    cert.commitment = c;
    for (const Slot& s : slots_) cert.attestations.push_back(*s.attestation);
    out.push_back(DeliverCertificate{std::move(cert)});
    return;
  }
  // Members may still be catching up with a replacement; give them the grace period.
  if (grace_until_.has_value() && now < *grace_until_) return;
  StartDispute(now, out);
}

void Round::StartDispute(RoundTime now, std::vector<RoundAction>& out) {
  // Cross-validation: the validators are the first k referee draws; the dispute referees follow.
  const std::vector<Address>& referees = xv_ ? xv_draws_.referees : in_.draws.referees;
  if (referees.empty()) {
    FailRound(FailReason::kNoReferees, "members disagree and the echelon has no referees", out);
    return;
  }
  state_ = RoundState::kDisputing;
  referee_deadline_ = now + in_.referee_timeout_ms;
  for (const Address& r : referees) referees_.push_back(RefereeVote{r, std::nullopt});
  out.push_back(StartReferees{referees, committee()});
}

void Round::Tally(RoundTime now, std::vector<RoundAction>& out) {
  if (state_ != RoundState::kDisputing) return;
  const size_t m = referees_.size();
  std::map<Hash256, size_t> votes;
  size_t pending = 0;
  for (const RefereeVote& r : referees_) {
    if (r.excluded) continue;
    if (r.attestation.has_value()) {
      ++votes[r.attestation->commitment];
    } else if (now < referee_deadline_) {
      ++pending;
    }
  }
  std::optional<Hash256> winner;
  size_t best = 0;
  for (const auto& [c, count] : votes) {
    if (2 * count > m) winner = c;
    best = std::max(best, count);
  }
  if (winner.has_value()) {
    state_ = RoundState::kResolved;
    DisputeResolved r;
    r.commitment = *winner;
    std::vector<Hash256> proofs;
    for (const Slot& s : slots_) {
      (s.attestation->commitment == *winner ? r.winners : r.losers).push_back(s.member);
      r.member_attestations.push_back(*s.attestation);
      proofs.push_back(s.attestation->proof);
    }
    r.proofs_inconsistent = r.losers.empty() && Commitment(proofs) != *winner;
    // Cross-validation: the validators that attested are judged like members (their C is over
    // the same committee [executor]).
    for (const RefereeVote& v : validators_) {
      if (v.excluded || !v.attestation.has_value()) continue;
      (v.attestation->commitment == *winner ? r.winners : r.losers).push_back(v.referee);
      r.member_attestations.push_back(*v.attestation);
    }
    for (const RefereeVote& v : referees_) {
      if (v.excluded || !v.attestation.has_value()) continue;
      (v.attestation->commitment == *winner ? r.majority_referees : r.dissenting_referees)
          .push_back(v.referee);
      r.referee_attestations.push_back(*v.attestation);
    }
    out.push_back(std::move(r));
    return;
  }
  // No C can reach a strict majority any more (even if every pending referee joined the leader).
  if (2 * (best + pending) <= m) {
    FailRound(FailReason::kNoMajority,
              absl::StrCat("no strict majority of ", m, " referees: best C has ", best, " votes, ",
                           pending, " referees pending"),
              out);
  }
}

std::vector<RoundAction> Round::OnTick(RoundTime now) {
  std::vector<RoundAction> out;
  if (state_ == RoundState::kCollecting) {
    for (size_t i = 0; i < n_ && state_ == RoundState::kCollecting; ++i) {
      if (!slots_[i].attestation.has_value() && slots_[i].deadline <= now) {
        if (!Replace(i, now, out)) {
          FailRound(FailReason::kNoBackups,
                    absl::StrCat("member ", i, " timed out and no backup was left"), out);
        }
      }
    }
    if (grace_until_.has_value() && now >= *grace_until_) grace_until_.reset();
    Decide(now, out);
  } else if (state_ == RoundState::kDisputing) {
    Tally(now, out);
  } else if (state_ == RoundState::kAwaitingSalt) {
    if (now >= salt_deadline_) DeliverXv(out);  // unrevealed: salt_ is empty
  } else if (state_ == RoundState::kValidating) {
    DecideValidation(now, out);
  }
  return out;
}

std::vector<RoundAction> Round::OnSaltRevealed(const XvSalt& salt, RoundTime now) {
  std::vector<RoundAction> out;
  if (state_ != RoundState::kAwaitingSalt) {
    ++counters_.salt_unexpected;
    return out;
  }
  if (XvSaltHash(salt) != in_.request.security.salt_hash) {
    ++counters_.salt_rejected;
    return out;
  }
  salt_ = salt;
  if (!XvCheckDrawn(salt, *slots_[0].attestation, in_.request.security.p_micro) ||
      xv_draws_.validators.empty()) {
    DeliverXv(out);  // no check drawn, or a check by k = 0 validators
    return out;
  }
  state_ = RoundState::kValidating;
  validator_deadline_ = now + in_.member_timeout_ms;
  for (const Address& v : xv_draws_.validators) validators_.push_back(RefereeVote{v, std::nullopt});
  out.push_back(StartValidators{xv_draws_.validators, committee()});
  return out;
}

void Round::DecideValidation(RoundTime now, std::vector<RoundAction>& out) {
  if (state_ != RoundState::kValidating) return;
  const Hash256& c = slots_[0].attestation->commitment;
  size_t answered = 0;
  size_t pending = 0;
  bool disagree = false;
  for (const RefereeVote& v : validators_) {
    if (v.excluded) continue;
    if (v.attestation.has_value()) {
      ++answered;
      disagree = disagree || v.attestation->commitment != c;
    } else if (now < validator_deadline_) {
      ++pending;
    }
  }
  // Wait for every validator (or its deadline): the dispute's evidence then holds all of them.
  if (pending > 0) return;
  if (disagree) {
    StartDispute(now, out);
    return;
  }
  if (answered < validators_.size()) {
    FailRound(FailReason::kValidatorsMissing,
              absl::StrCat(answered, " of ", validators_.size(),
                           " validators attested (all agreeing); the check is incomplete"),
              out);
    return;
  }
  DeliverXv(out);
}

void Round::DeliverXv(std::vector<RoundAction>& out) {
  state_ = RoundState::kCertified;
  XvCertificate cert;
  cert.base.request = in_.request;
  cert.base.client_signature = in_.client_signature;
  cert.base.committee = committee();
  cert.base.commitment = slots_[0].attestation->commitment;
  cert.base.attestations.push_back(*slots_[0].attestation);
  cert.salt = salt_;
  for (const RefereeVote& v : validators_) {
    if (v.attestation.has_value() && !v.excluded) cert.validators.push_back(*v.attestation);
  }
  out.push_back(DeliverXvCertificate{std::move(cert)});
}

std::optional<RoundTime> Round::NextDeadline() const {
  if (state_ == RoundState::kCollecting) {
    std::optional<RoundTime> next = grace_until_;
    for (const Slot& s : slots_) {
      if (!s.attestation.has_value() && (!next.has_value() || s.deadline < *next)) {
        next = s.deadline;
      }
    }
    return next;
  }
  if (state_ == RoundState::kDisputing) return referee_deadline_;
  if (state_ == RoundState::kAwaitingSalt) return salt_deadline_;
  if (state_ == RoundState::kValidating) return validator_deadline_;
  return std::nullopt;
}

}  // namespace atoma::consensus
