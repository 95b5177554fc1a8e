// The verification behind `atoma-cli verify` (see verify.h).
#include "verify.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "atoma/consensus/committee.h"
#include "atoma/consensus/request.h"
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

}  // namespace

absl::StatusOr<std::string> VerifyWithLedger(ledger::LedgerClient& ledger,
                                             const consensus::Certificate& cert,
                                             const consensus::ConsensusOutput* output) {
  auto denied = [](absl::string_view why) {
    return absl::PermissionDeniedError(absl::StrCat("not verified: ", why));
  };
  if (cert.attestations.empty()) return denied("the certificate has no attestations");
  auto params = ledger.GetParams();
  if (!params.ok()) return params.status();
  consensus::CertificateContext ctx;
  ctx.domain = params->domain;
  ctx.epoch = cert.request.epoch;
  // The echelon comes from the attestations (as in settlement); the checks make sure all of
  // them name it.
  ctx.echelon_id = cert.attestations[0].echelon_id;
  auto epoch = ledger.GetEpoch(ctx.epoch);
  if (!epoch.ok()) return denied(epoch.status().message());
  ctx.epoch_seed = epoch->seed;
  auto snapshot = ledger.EchelonSnapshot(ctx.epoch, ctx.echelon_id);
  if (!snapshot.ok()) return denied(snapshot.status().message());
  for (const ledger::Candidate& c : *snapshot) ctx.registry.push_back({c.address, c.stake});

  const size_t n = cert.committee.size();
  const std::string committee_line =
      absl::StrCat(n, "/", n, " members, committee matches epoch ", ctx.epoch, " seed 0x",
                   crypto::ToHex(ctx.epoch_seed).substr(0, 16), "... and the frozen snapshot (",
                   ctx.registry.size(), " candidates) of echelon 0x",
                   crypto::ToHex(ctx.echelon_id).substr(0, 16), "...");
  const std::string request_line = absl::StrCat(
      "request 0x", crypto::ToHex(consensus::RequestId(cert.request)), ", authorized by client ",
      crypto::AddressToString(cert.request.client), " (client signature verified)");
  if (output != nullptr) {
    const consensus::CertificateVerdict v = consensus::VerifyCertificate(cert, *output, ctx);
    if (!v.ok()) {
      std::string where;
      if (v.check == consensus::CertificateCheck::kBadClientSignature) {
        where = "client: ";
      } else if (v.member >= 0) {
        where = absl::StrCat("member ", v.member, ": ");
      }
      return denied(absl::StrCat(where, v.reason));
    }
    return absl::StrCat("verified: ", committee_line, "; output matches commitment C (",
                        output->token_ids.size(), " tokens)\n", request_line, "\n");
  }
  if (std::string failure = CheckWithoutOutput(cert, ctx); !failure.empty()) {
    return denied(failure);
  }
  return absl::StrCat("verified without output: ", committee_line,
                      "; all attest one commitment C\n", request_line,
                      "\nnot checked: the output (pass --output to check C, each proof, token "
                      "counts, Merkle root)\n");
}

}  // namespace atoma::cli
