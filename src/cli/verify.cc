// The verification behind `atoma-cli verify` (see verify.h).
#include "verify.h"

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "atoma/consensus/committee.h"
#include "atoma/consensus/request.h"
#include "atoma/consensus/xv.h"
#include "atoma/crypto/keys.h"
#include "atoma/crypto/sha256.h"

namespace atoma::cli {
namespace {

// The checks that do not need the output; returns "" when they pass, else the failure.
std::string CheckWithoutOutput(const consensus::Certificate& cert,
                               const consensus::CertificateContext& ctx) {
  if (absl::Status s =
          consensus::VerifyClientSignature(ctx.domain, cert.request, cert.client_signature);
      !s.ok()) {
    return absl::StrCat("client: ", s.message());
  }
  const size_t n = consensus::CommitteeSize(cert.request.security);
  if (cert.committee.size() != n || cert.attestations.size() != n) {
    return absl::StrCat("malformed: request wants ", n, " members, certificate has ",
                        cert.committee.size(), " members and ", cert.attestations.size(),
                        " attestations");
  }
  const consensus::Hash256 request_id = consensus::RequestId(cert.request);
  auto draws = consensus::SelectCommittee(ctx.epoch_seed, request_id, ctx.registry, n,
                                          consensus::BackupCount(n), 0);
  if (!draws.ok()) return absl::StrCat("wrong committee: ", draws.status().message());
  // The same rule as VerifyCertificate and the ledger's dispute settlement.
  if (absl::Status view = consensus::CheckCommitteeView(*draws, cert.committee); !view.ok()) {
    return absl::StrCat("wrong committee: ", view.message(),
                        " (slot i must hold the i-th draw of the epoch seed or a backup)");
  }
  for (size_t i = 0; i < n; ++i) {
    const consensus::Address& m = cert.committee[i];
    const consensus::Attestation& a = cert.attestations[i];
    if (a.member != m) return absl::StrCat("wrong committee: attestation ", i, " is not by ", i);
    if (absl::Status s = consensus::VerifyAttestation(a, ctx.domain, ctx.epoch); !s.ok()) {
      return absl::StrCat("member ", i, ": ", s.message());
    }
    if (a.request_id != request_id) return absl::StrCat("member ", i, ": another request");
    if (a.echelon_id != ctx.echelon_id) return absl::StrCat("member ", i, ": another echelon");
    if (a.commitment != cert.commitment) {
      return absl::StrCat("member ", i, ": conflicting commitment");
    }
  }
  return "";
}

absl::Status Denied(absl::string_view why) {
  return absl::PermissionDeniedError(absl::StrCat("not verified: ", why));
}

// The verification context of `cert` from the ledger: its domain, the seed of the request's epoch
// and the frozen snapshot of the echelon the first attestation names (as in settlement; the checks
// make sure every attestation names it). PERMISSION_DENIED for an epoch or echelon the ledger does
// not know.
absl::StatusOr<consensus::CertificateContext> LoadContext(ledger::LedgerClient& ledger,
                                                          const consensus::Certificate& cert) {
  if (cert.attestations.empty()) return Denied("the certificate has no attestations");
  auto params = ledger.GetParams();
  if (!params.ok()) return params.status();
  consensus::CertificateContext ctx;
  ctx.domain = params->domain;
  ctx.epoch = cert.request.epoch;
  ctx.echelon_id = cert.attestations[0].echelon_id;
  auto epoch = ledger.GetEpoch(ctx.epoch);
  if (!epoch.ok()) return Denied(epoch.status().message());
  ctx.epoch_seed = epoch->seed;
  auto snapshot = ledger.EchelonSnapshot(ctx.epoch, ctx.echelon_id);
  if (!snapshot.ok()) return Denied(snapshot.status().message());
  for (const ledger::Candidate& c : *snapshot) ctx.registry.push_back({c.address, c.stake});
  return ctx;
}

std::string SnapshotLine(const consensus::CertificateContext& ctx) {
  return absl::StrCat("epoch ", ctx.epoch, " seed 0x", crypto::ToHex(ctx.epoch_seed).substr(0, 16),
                      "... and the frozen snapshot (", ctx.registry.size(),
                      " candidates) of echelon 0x", crypto::ToHex(ctx.echelon_id).substr(0, 16),
                      "...");
}

std::string RequestLine(const consensus::Certificate& cert) {
  return absl::StrCat("request 0x", crypto::ToHex(consensus::RequestId(cert.request)),
                      ", authorized by client ", crypto::AddressToString(cert.request.client),
                      " (client signature verified)");
}

// The cross-validation checks that do not need the output (the executor's part is checked by
// CheckWithoutOutput); returns "" when they pass, else the failure.
std::string CheckXvWithoutOutput(const consensus::XvCertificate& cert,
                                 const consensus::CertificateContext& ctx) {
  const consensus::ConsensusRequest& request = cert.base.request;
  if (request.security.mode != consensus::SecurityMode::kCrossValidation) {
    return "malformed: the request's security is not cross_validation";
  }
  if (!cert.salt.has_value()) {
    return cert.validators.empty()
               ? ""
               : "malformed: an unrevealed certificate carries validator attestations";
  }
  if (consensus::XvSaltHash(*cert.salt) != request.security.salt_hash) {
    return "bad salt: the salt does not hash to the request's salt_hash";
  }
  if (!consensus::XvCheckDrawn(*cert.salt, cert.base.attestations[0], request.security.p_micro)) {
    return cert.validators.empty()
               ? ""
               : absl::StrCat("malformed: the coin drew no check, yet the certificate carries ",
                              cert.validators.size(), " validator attestations");
  }
  const uint64_t k = request.security.k;
  const consensus::Hash256 request_id = consensus::RequestId(request);
  auto draws = consensus::SelectCommittee(ctx.epoch_seed, request_id, ctx.registry, 1,
                                          consensus::BackupCount(1), consensus::XvRefereeDraws(k));
  if (!draws.ok()) return absl::StrCat("wrong committee: ", draws.status().message());
  const consensus::XvDraws roles = consensus::SplitXvDraws(*draws, k);
  if (roles.validators.size() < k || cert.validators.size() < k) {
    return absl::StrCat("missing validators: the coin drew a check by ", k,
                        " validators; the echelon has ", roles.validators.size(),
                        " to draw and the certificate carries ", cert.validators.size());
  }
  if (cert.validators.size() > k) {
    return absl::StrCat("malformed: the request wants ", k, " validators; the certificate has ",
                        cert.validators.size());
  }
  for (size_t i = 0; i < k; ++i) {
    const consensus::Attestation& a = cert.validators[i];
    const std::string who = absl::StrCat("validator ", i, ": ");
    if (a.member != roles.validators[i]) {
      return absl::StrCat(who, "wrong committee: ", crypto::AddressToString(a.member),
                          " is not the validator draw ",
                          crypto::AddressToString(roles.validators[i]));
    }
    if (absl::Status s = consensus::VerifyAttestation(a, ctx.domain, ctx.epoch); !s.ok()) {
      return absl::StrCat(who, s.message());
    }
    if (a.request_id != request_id) return absl::StrCat(who, "another request");
    if (a.echelon_id != ctx.echelon_id) return absl::StrCat(who, "another echelon");
    if (a.commitment != cert.base.commitment) {
      return absl::StrCat(who, "conflicting commitment (not the executor's C)");
    }
  }
  return "";
}

}  // namespace

absl::StatusOr<std::string> VerifyWithLedger(ledger::LedgerClient& ledger,
                                             const consensus::Certificate& cert,
                                             const consensus::ConsensusOutput* output) {
  absl::StatusOr<consensus::CertificateContext> loaded = LoadContext(ledger, cert);
  if (!loaded.ok()) return loaded.status();
  const consensus::CertificateContext& ctx = *loaded;

  const size_t n = cert.committee.size();
  const std::string committee_line =
      absl::StrCat(n, "/", n, " members, committee matches ", SnapshotLine(ctx));
  const std::string request_line = RequestLine(cert);
  if (output != nullptr) {
    const consensus::CertificateVerdict v = consensus::VerifyCertificate(cert, *output, ctx);
    if (!v.ok()) {
      std::string where;
      if (v.check == consensus::CertificateCheck::kBadClientSignature) {
        where = "client: ";
      } else if (v.member >= 0) {
        where = absl::StrCat("member ", v.member, ": ");
      }
      return Denied(absl::StrCat(where, v.reason));
    }
    return absl::StrCat("verified: ", committee_line, "; output matches commitment C (",
                        output->token_ids.size(), " tokens)\n", request_line, "\n");
  }
  if (std::string failure = CheckWithoutOutput(cert, ctx); !failure.empty()) {
    return Denied(failure);
  }
  return absl::StrCat("verified without output: ", committee_line,
                      "; all attest one commitment C\n", request_line,
                      "\nnot checked: the output (pass --output to check C, each proof, token "
                      "counts, Merkle root)\n");
}

absl::StatusOr<std::string> VerifyXvWithLedger(ledger::LedgerClient& ledger,
                                               const consensus::XvCertificate& cert,
                                               const consensus::ConsensusOutput* output) {
  absl::StatusOr<consensus::CertificateContext> loaded = LoadContext(ledger, cert.base);
  if (!loaded.ok()) return loaded.status();
  const consensus::CertificateContext& ctx = *loaded;
  const consensus::ConsensusRequest& request = cert.base.request;

  if (output != nullptr) {
    const consensus::CertificateVerdict v = consensus::VerifyXvCertificate(cert, *output, ctx);
    if (!v.ok()) {
      std::string where;
      if (v.check == consensus::CertificateCheck::kBadClientSignature) {
        where = "client: ";
      } else if (v.member == 0) {
        where = "executor: ";
      } else if (v.member > 0) {
        where = absl::StrCat("validator ", v.member - 1, ": ");
      } else if (v.check == consensus::CertificateCheck::kBadSalt) {
        where = "bad salt: ";
      } else if (v.check == consensus::CertificateCheck::kMissingValidators) {
        where = "missing validators: ";
      }
      return Denied(absl::StrCat(where, v.reason));
    }
  } else {
    // The executor's part is a certificate of a committee of one.
    if (std::string failure = CheckWithoutOutput(cert.base, ctx); !failure.empty()) {
      constexpr absl::string_view kMember0 = "member 0: ";
      if (absl::StartsWith(failure, kMember0)) {
        failure = absl::StrCat("executor: ", failure.substr(kMember0.size()));
      } else if (!absl::StartsWith(failure, "client: ")) {
        failure = absl::StrCat("executor: ", failure);
      }
      return Denied(failure);
    }
    if (std::string failure = CheckXvWithoutOutput(cert, ctx); !failure.empty()) {
      return Denied(failure);
    }
  }

  // Verified: describe the outcome (the checks above fixed which one it is).
  std::string outcome;
  std::string coin_line;
  if (!cert.salt.has_value()) {
    outcome = "executor only (salt never revealed)";
    coin_line =
        "salt: never revealed before the round's salt timeout (the client chose not to check; "
        "the executor's result is final unchecked)";
  } else {
    const uint64_t coin = consensus::XvCoin(*cert.salt, cert.base.attestations[0]);
    const bool drawn = coin < request.security.p_micro;
    outcome = drawn
                  ? absl::StrCat("executor + ", cert.validators.size(), " validators (coin drawn)")
                  : std::string("executor only (coin not drawn)");
    coin_line =
        absl::StrCat("salt revealed; coin ", coin, (drawn ? " < " : " >= "), "p ",
                     request.security.p_micro, " (in millionths; a check is drawn when coin < p)");
  }
  const std::string executor_line = absl::StrCat(
      "executor ", crypto::AddressToString(cert.base.committee[0]), " matches ", SnapshotLine(ctx));
  std::string validators_line;
  for (size_t i = 0; i < cert.validators.size(); ++i) {
    absl::StrAppend(&validators_line, i == 0 ? "validators (draw order): " : ", ",
                    crypto::AddressToString(cert.validators[i].member));
  }
  if (!validators_line.empty()) validators_line += "\n";
  if (output != nullptr) {
    return absl::StrCat("verified: ", outcome, "; output matches commitment C (",
                        output->token_ids.size(), " tokens)\n", coin_line, "\n", executor_line,
                        "\n", validators_line, RequestLine(cert.base), "\n");
  }
  return absl::StrCat("verified without output: ", outcome, "; all attest one commitment C\n",
                      coin_line, "\n", executor_line, "\n", validators_line, RequestLine(cert.base),
                      "\nnot checked: the output (pass --output to check C, each proof, token "
                      "counts, Merkle root)\n");
}

}  // namespace atoma::cli
