#include "batch_verify.h"

#include "absl/strings/str_cat.h"
#include "atoma/common/status.h"
#include "atoma/consensus/request.h"
#include "atoma/consensus/xv.h"

namespace atoma::ledger {

absl::Status CheckItemForm(const SettlementItem& item) {
  const consensus::Certificate& cert = item.certificate;
  if (item.xv.has_value() && item.xv->base != cert) {
    // Two copies of one certificate that disagree: settling either would leave the other
    // unexplained (the journal and the node read `certificate`, the verifier `xv`).
    return absl::InvalidArgumentError(
        "cross-validation item: `certificate` is not the cross-validation certificate's base");
  }
  if (!item.xv.has_value() &&
      cert.request.security.mode == consensus::SecurityMode::kCrossValidation) {
    // The base alone passes VerifyCertificate but proves only the executor's claim: it would
    // settle a request whose coin drew a check without the validators (and close it to their
    // dispute).
    return absl::InvalidArgumentError(
        "a cross_validation request settles only as a cross-validation certificate (0x02)");
  }
  if (cert.attestations.empty()) {
    return absl::InvalidArgumentError("certificate has no attestations");
  }
  return absl::OkStatus();
}

absl::Status CheckDisputeForm(const DisputeEvidence& ev) {
  const bool xv = ev.request.security.mode == consensus::SecurityMode::kCrossValidation;
  const uint64_t k = xv ? ev.request.security.k : 0;
  if (ev.member_attestations.empty()) {
    return absl::InvalidArgumentError("dispute evidence has no member attestations");
  }
  if (xv && k > consensus::kMaxCommitteeSize) {
    return absl::InvalidArgumentError(absl::StrCat("cross-validation request wants ", k,
                                                   " validators; at most ",
                                                   consensus::kMaxCommitteeSize));
  }
  if (ev.committee.size() > consensus::kMaxCommitteeSize ||
      ev.member_attestations.size() < ev.committee.size() ||
      ev.member_attestations.size() > ev.committee.size() + k) {
    return absl::InvalidArgumentError(
        xv ? absl::StrCat("cross-validation dispute evidence has ", ev.committee.size(),
                          " members and ", ev.member_attestations.size(),
                          " member attestations (the executor's, then at most ", k, " validators')")
           : absl::StrCat("dispute evidence has ", ev.committee.size(), " members and ",
                          ev.member_attestations.size(),
                          " member attestations (one per member, at most ",
                          consensus::kMaxCommitteeSize, ")"));
  }
  if (ev.referee_attestations.size() > consensus::RefereeCount(consensus::kMaxCommitteeSize)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "dispute evidence has ", ev.referee_attestations.size(), " referee attestations; at most ",
        consensus::RefereeCount(consensus::kMaxCommitteeSize)));
  }
  return absl::OkStatus();
}

BatchVerifier::BatchVerifier(const consensus::Domain& domain, std::span<const SettlementItem> items,
                             std::span<SettlementResult> results)
    : items_(items), results_(results) {
  for (size_t i = 0; i < items.size(); ++i) {
    const consensus::Certificate& cert = items[i].certificate;
    results[i].request_id = consensus::RequestId(cert.request);
    if (cert.attestations.empty()) continue;
    auto [it, inserted] =
        contexts_.try_emplace({cert.request.epoch, cert.attestations[0].echelon_id});
    if (inserted) {
      it->second.context.domain = domain;
      it->second.context.epoch = it->first.first;
      it->second.context.echelon_id = it->first.second;
    }
  }
}

absl::Status BatchVerifier::Load(const EpochLoader& epoch_of, const SnapshotLoader& snapshot_of) {
  for (auto& [key, ctx] : contexts_) {
    absl::StatusOr<Epoch> epoch = epoch_of(key.first);
    if (absl::IsNotFound(epoch.status())) {
      ctx.status = epoch.status();
      continue;
    }
    RETURN_IF_ERROR(epoch.status());
    ctx.context.epoch_seed = epoch->seed;
    ASSIGN_OR_RETURN(std::vector<Candidate> snapshot, snapshot_of(key.first, key.second));
    ctx.context.registry.clear();
    for (const Candidate& c : snapshot) ctx.context.registry.push_back({c.address, c.stake});
  }
  return absl::OkStatus();
}

std::vector<bool> BatchVerifier::Verify() const {
  std::vector<bool> verified(items_.size(), false);
  for (size_t i = 0; i < items_.size(); ++i) {
    const SettlementItem& item = items_[i];
    const consensus::Certificate& cert = item.certificate;
    SettlementResult& r = results_[i];
    if (absl::Status form = CheckItemForm(item); !form.ok()) {
      r.status = form;
      r.check = consensus::CertificateCheck::kMalformed;
      continue;
    }
    const Context& ctx = contexts_.at({cert.request.epoch, cert.attestations[0].echelon_id});
    if (!ctx.status.ok()) {
      r.status = ctx.status;
      continue;
    }
    const consensus::CertificateVerdict verdict =
        item.xv.has_value() ? consensus::VerifyXvCertificate(*item.xv, item.output, ctx.context)
                            : consensus::VerifyCertificate(cert, item.output, ctx.context);
    r.check = verdict.check;
    r.member = verdict.member;
    if (!verdict.ok()) {
      r.status = absl::PermissionDeniedError(
          absl::StrCat("certificate does not verify: ", verdict.reason));
      continue;
    }
    verified[i] = true;
  }
  return verified;
}

}  // namespace atoma::ledger
