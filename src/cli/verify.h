// The verification behind `atoma-cli verify`, as a function a test can call: a certificate
// checked against an embedded (or any) ledger's domain, epoch seed and frozen snapshot.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "atoma/consensus/attestation.h"
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

}  // namespace atoma::cli
