// atoma-cli verify: checks a certificate (the binary encoding of attestation.h) against the epoch
// seed and frozen snapshot of an embedded ledger, as a client or auditor would.
//
// With --output the full VerifyCertificate runs. Without it the checks that need the output
// (C == commitment of the output, each member's p_i, token counts, Merkle root) cannot run; what
// remains is checked here with the same public building blocks: committee size, the committee is
// the recomputed draw (or its backups) from the epoch seed and snapshot, every attestation is
// signed by its member for this ledger's domain and the request's epoch, names the request and
// one echelon, and all attest the certificate's C.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "atoma/consensus/attestation.h"
#include "atoma/consensus/committee.h"
#include "atoma/consensus/request.h"
#include "atoma/crypto/keys.h"
#include "atoma/crypto/sha256.h"
#include "atoma/ledger/ledger.h"
#include "commands.h"
#include "nlohmann/json.hpp"

namespace atoma::cli {

std::unique_ptr<ledger::LedgerClient> OpenExistingLedger(const std::string& db);  // ledger_cmd.cc

namespace {

std::vector<uint8_t> ReadFileOrFail(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) Fail(absl::StrCat("cannot read ", path));
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The output file: {"token_ids": [..], "finish_reason": "stop" | "length"}.
consensus::ConsensusOutput ReadOutputOrFail(const std::string& path) {
  const std::vector<uint8_t> bytes = ReadFileOrFail(path);
  consensus::ConsensusOutput out;
  try {
    const nlohmann::json j = nlohmann::json::parse(bytes.begin(), bytes.end());
    for (const auto& id : j.at("token_ids")) out.token_ids.push_back(id.get<uint32_t>());
    const std::string reason = j.at("finish_reason").get<std::string>();
    if (reason == "stop") {
      out.finish_reason = consensus::FinishReason::kStop;
    } else if (reason == "length") {
      out.finish_reason = consensus::FinishReason::kLength;
    } else {
      Fail(absl::StrCat(path, ": finish_reason must be \"stop\" or \"length\""));
    }
  } catch (const nlohmann::json::exception& e) {
    Fail(absl::StrCat(path,
                      ": not an output file ({\"token_ids\": [...], \"finish_reason\": "
                      "\"stop\"|\"length\"}): ",
                      e.what()));
  }
  return out;
}

// The checks that do not need the output; returns "" when they pass, else the failure.
std::string CheckWithoutOutput(const consensus::Certificate& cert,
                               const consensus::CertificateContext& ctx) {
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
  std::set<consensus::Address> seen;
  for (size_t i = 0; i < n; ++i) {
    const consensus::Address& m = cert.committee[i];
    const bool drawn =
        m == draws->committee[i] ||
        std::find(draws->backups.begin(), draws->backups.end(), m) != draws->backups.end();
    if (!drawn || !seen.insert(m).second) {
      return absl::StrCat("wrong committee: member ", i, " (", crypto::AddressToString(m),
                          ") is not the draw of the epoch seed nor an unused backup");
    }
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

void AddVerifyCommand(CLI::App& app) {
  auto db = std::make_shared<std::string>();
  auto cert_path = std::make_shared<std::string>();
  auto output_path = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand(
      "verify",
      "Verify a certificate file against an embedded ledger's epoch seed and frozen snapshot. "
      "Exit 0 when it verifies, 1 otherwise. Without --output the output-dependent checks "
      "(commitment C, each member's proof, token counts, Merkle root) are skipped and the "
      "verdict says so.");
  cmd->add_option("--db", *db, "embedded ledger file")->required();
  cmd->add_option("CERT_FILE", *cert_path, "certificate (binary encoding)")->required();
  cmd->add_option("--output", *output_path,
                  "the certified output as JSON: {\"token_ids\": [...], \"finish_reason\": "
                  "\"stop\"|\"length\"}");
  cmd->callback([db, cert_path, output_path] {
    const std::vector<uint8_t> bytes = ReadFileOrFail(*cert_path);
    auto cert = consensus::DecodeCertificate(bytes);
    if (!cert.ok()) {
      Fail(absl::StrCat("not a certificate: ", *cert_path, ": ", cert.status().message()));
    }
    if (cert->attestations.empty()) Fail("not verified: the certificate has no attestations");
    auto l = OpenExistingLedger(*db);
    auto params = l->GetParams();
    if (!params.ok()) Fail(params.status());
    consensus::CertificateContext ctx;
    ctx.domain = params->domain;
    ctx.epoch = cert->request.epoch;
    // The echelon comes from the attestations (as in settlement); the checks below make sure
    // all of them name it.
    ctx.echelon_id = cert->attestations[0].echelon_id;
    auto epoch = l->GetEpoch(ctx.epoch);
    if (!epoch.ok()) Fail(absl::StrCat("not verified: ", epoch.status().message()));
    ctx.epoch_seed = epoch->seed;
    auto snapshot = l->EchelonSnapshot(ctx.epoch, ctx.echelon_id);
    if (!snapshot.ok()) Fail(absl::StrCat("not verified: ", snapshot.status().message()));
    for (const ledger::Candidate& c : *snapshot) ctx.registry.push_back({c.address, c.stake});

    const size_t n = cert->committee.size();
    const std::string committee_line =
        absl::StrCat(n, "/", n, " members, committee matches epoch ", ctx.epoch, " seed 0x",
                     crypto::ToHex(ctx.epoch_seed).substr(0, 16), "... and the frozen snapshot (",
                     ctx.registry.size(), " candidates) of echelon 0x",
                     crypto::ToHex(ctx.echelon_id).substr(0, 16), "...");
    const std::string request_line =
        absl::StrCat("request 0x", crypto::ToHex(consensus::RequestId(cert->request)));
    if (!output_path->empty()) {
      const consensus::ConsensusOutput output = ReadOutputOrFail(*output_path);
      const consensus::CertificateVerdict v = consensus::VerifyCertificate(*cert, output, ctx);
      if (!v.ok()) {
        Fail(absl::StrCat("not verified",
                          v.member >= 0 ? absl::StrCat(" (member ", v.member, ")") : "", ": ",
                          v.reason));
      }
      std::printf("verified: %s; output matches commitment C (%zu tokens)\n%s\n",
                  committee_line.c_str(), output.token_ids.size(), request_line.c_str());
      return;
    }
    if (std::string failure = CheckWithoutOutput(*cert, ctx); !failure.empty()) {
      Fail(absl::StrCat("not verified: ", failure));
    }
    std::printf(
        "verified without output: %s; all attest one commitment C\n%s\n"
        "not checked: the output (pass --output to check C, each proof, token counts, Merkle "
        "root)\n",
        committee_line.c_str(), request_line.c_str());
  });
}

}  // namespace atoma::cli
