// Committee selection (DESIGN §4.4): stake-weighted sampling without replacement, recomputable by
// anyone who holds the epoch seed, the request id and the echelon's registry snapshot.
//
// Draw k = 0, 1, 2, ... (uint64):
//   u = uint256_be(H("atoma/committee", S_e, request_id, k)) mod R
// where R is the total stake of the candidates not yet drawn; walking the remaining candidates in
// ascending address-byte order, the first whose running stake sum exceeds u is drawn and removed.
// The first n draws are the committee (in draw order), the next `backups` draws the backups, the
// next `referees` draws the referees. Integer arithmetic only.
//
// Pure function, thread-safe.
#pragma once

#include <cstddef>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "atoma/common/uint256.h"
#include "atoma/consensus/encoding.h"

namespace atoma::consensus {

struct Candidate {
  Address address{};
  Uint256 stake;  // frozen for the epoch; zero-stake entries are ignored
};

struct CommitteeDraws {
  std::vector<Address> committee;  // exactly n, in draw order
  std::vector<Address> backups;    // up to `backups`, in draw order
  std::vector<Address> referees;   // up to `referees`, in draw order
};

// Candidates may come in any order (they are sorted by address here). Errors:
//   INVALID_ARGUMENT: n == 0, or the same address appears twice;
//   OUT_OF_RANGE: the total stake of the candidates exceeds 2^256 - 1;
//   FAILED_PRECONDITION: fewer than n candidates with non-zero stake.
// Backups and then referees are drawn while candidates remain, so fewer than asked may come back
// when the echelon is small (a verifier recomputing the draws gets the same lists).
absl::StatusOr<CommitteeDraws> SelectCommittee(const Hash256& epoch_seed, const Hash256& request_id,
                                               std::span<const Candidate> candidates, size_t n,
                                               size_t backups, size_t referees);

// Whether `node` is among any of the draws (committee, backups or referees).
bool IsDrawn(const CommitteeDraws& draws, const Address& node);

// The k-th draw's hash H("atoma/committee", S_e, request_id, k) (exposed for tests and tools).
Hash256 CommitteeDrawHash(const Hash256& epoch_seed, const Hash256& request_id, uint64_t k);

}  // namespace atoma::consensus
