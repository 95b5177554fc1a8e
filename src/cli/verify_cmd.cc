// atoma-cli verify: checks a certificate (the binary encoding of attestation.h, version 0x01, or a
// cross-validation certificate of xv.h, version 0x02) against the epoch seed and frozen snapshot
// of a ledger (an embedded file or an EVM contract, ledger_open.h), as a client or auditor would.
//
// With --output the full VerifyCertificate runs. Without it the checks that need the output
// (C == commitment of the output, each member's p_i, token counts, Merkle root) cannot run; what
// remains is checked here with the same public building blocks: the client's signature, committee
// size, the committee is the recomputed draw (or its backups) from the epoch seed and snapshot,
// every attestation is signed by its member for this ledger's domain and the request's epoch,
// names the request and one echelon, and all attest the certificate's C.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "atoma/consensus/attestation.h"
#include "atoma/consensus/committee.h"
#include "atoma/consensus/request.h"
#include "atoma/consensus/xv.h"
#include "atoma/crypto/keys.h"
#include "atoma/crypto/sha256.h"
#include "atoma/ledger/ledger.h"
#include "commands.h"
#include "ledger_open.h"
#include "nlohmann/json.hpp"
#include "verify.h"

namespace atoma::cli {

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

}  // namespace

void AddVerifyCommand(CLI::App& app) {
  auto ledger_flags = std::make_shared<LedgerFlags>();
  auto cert_path = std::make_shared<std::string>();
  auto output_path = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand(
      "verify",
      "Verify a certificate file (sampling, or cross-validation: executor, salt and validators) "
      "against a ledger's epoch seed and frozen snapshot (an embedded file, --db FILE, or the "
      "contract on an EVM chain, --rpc-url URL --contract ADDRESS). "
      "Exit 0 when it verifies, 1 otherwise. The client's signature (its authorization of "
      "the request) is always checked. Without --output the output-dependent checks "
      "(commitment C, each member's proof, token counts, Merkle root) are skipped and the "
      "verdict says so.");
  AddLedgerFlags(cmd, ledger_flags.get(), "--db,--ledger-db");
  cmd->add_option("CERT_FILE", *cert_path,
                  "certificate (binary encoding: 0x01 sampling, 0x02 cross-validation)")
      ->required();
  cmd->add_option("--output", *output_path,
                  "the certified output as JSON: {\"token_ids\": [...], \"finish_reason\": "
                  "\"stop\"|\"length\"}");
  cmd->callback([ledger_flags, cert_path, output_path] {
    // Flag mistakes first, before reading any file.
    if (absl::Status s = RequireLedger(*ledger_flags, "verify").status(); !s.ok()) Fail(s);
    const std::vector<uint8_t> bytes = ReadFileOrFail(*cert_path);
    // The version byte tells the forms apart (0x01 sampling, 0x02 cross-validation); each
    // decoder rejects the other's, so an unknown byte gets the sampling decoder's message.
    const bool xv = !bytes.empty() && bytes[0] == consensus::kXvEncodingVersion;
    std::optional<consensus::Certificate> cert;
    std::optional<consensus::XvCertificate> xv_cert;
    if (xv) {
      auto decoded = consensus::DecodeXvCertificate(bytes);
      if (!decoded.ok()) {
        Fail(absl::StrCat("not a certificate: ", *cert_path, ": ", decoded.status().message()));
      }
      xv_cert = *std::move(decoded);
    } else {
      auto decoded = consensus::DecodeCertificate(bytes);
      if (!decoded.ok()) {
        Fail(absl::StrCat("not a certificate: ", *cert_path, ": ", decoded.status().message()));
      }
      cert = *std::move(decoded);
    }
    auto l = OpenLedger(*ledger_flags);
    if (!l.ok()) Fail(l.status());
    std::optional<consensus::ConsensusOutput> output;
    if (!output_path->empty()) output = ReadOutputOrFail(*output_path);
    const consensus::ConsensusOutput* out = output ? &*output : nullptr;
    auto verdict = xv ? VerifyXvWithLedger(**l, *xv_cert, out) : VerifyWithLedger(**l, *cert, out);
    if (!verdict.ok()) Fail(verdict.status());
    std::printf("%s", verdict->c_str());
  });
}

}  // namespace atoma::cli
