// The verification behind `atoma-cli verify`, as a function a test can call: a certificate
// (sampling, 0x01, or cross-validation, 0x02) checked against an embedded (or any) ledger's
// domain, epoch seed and frozen snapshot.
//
// Error contract: OK with the human verdict when the certificate verifies; PERMISSION_DENIED
// "not verified: <reason>" when it does not; the ledger's own error when the ledger cannot be
// read. Thread-compatible (the functions hold no state; the ledger's own rules apply).
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "atoma/consensus/attestation.h"
#include "atoma/consensus/xv.h"
#include "atoma/ledger/ledger.h"

namespace atoma::cli {

// With `output` (may be null): the full consensus::VerifyCertificate. Without it, the checks that
// do not need the output: the client's signature authorizes the request for the ledger's domain,
// committee size, the committee is the recomputed draw (or unused
// backups) from the epoch seed and snapshot, every attestation is signed by its member for the
// ledger's domain and the request's epoch, names the request and one echelon, and attests the
// certificate's C. Returns the human verdict ("verified: 3/3 members, ...") when it verifies;
// PERMISSION_DENIED "not verified: <reason>" when it does not (unknown epoch or echelon
// included; "client: ..." when the client signature fails); the ledger's own error when the ledger
// cannot be read. Thread-compatible.
absl::StatusOr<std::string> VerifyWithLedger(ledger::LedgerClient& ledger,
                                             const consensus::Certificate& cert,
                                             const consensus::ConsensusOutput* output);

// A cross-validation certificate (consensus/xv.h). With `output`: consensus::VerifyXvCertificate.
// Without it: the executor's part as VerifyWithLedger checks a certificate without its output,
// then everything of the coin and the validators that does not need the output (the salt hashes
// to the request's salt_hash, the coin, no validators unless drawn, exactly k validators in draw
// order when drawn, each signed for this domain and epoch, naming the request and the echelon,
// attesting the executor's C). The verdict's first line starts with one of
//   "verified: executor + K validators (coin drawn)"
//   "verified: executor only (coin not drawn)"
//   "verified: executor only (salt never revealed)"
// ("verified without output: ..." without the output). A failure names "client: ",
// "executor: " or "validator I: " (0-based, draw order) where it can.
absl::StatusOr<std::string> VerifyXvWithLedger(ledger::LedgerClient& ledger,
                                               const consensus::XvCertificate& cert,
                                               const consensus::ConsensusOutput* output);

}  // namespace atoma::cli
