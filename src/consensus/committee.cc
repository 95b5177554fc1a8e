#include "atoma/consensus/committee.h"

#include <algorithm>

#include "absl/status/status.h"

namespace atoma::consensus {

Hash256 CommitteeDrawHash(const Hash256& epoch_seed, const Hash256& request_id, uint64_t k) {
  return TaggedHash("atoma/committee", Encoder().Hash(epoch_seed).Hash(request_id).U64(k));
}

absl::StatusOr<CommitteeDraws> SelectCommittee(const Hash256& epoch_seed, const Hash256& request_id,
                                               std::span<const Candidate> candidates, size_t n,
                                               size_t backups, size_t referees) {
  if (n == 0) return absl::InvalidArgumentError("committee size must be at least 1");
  std::vector<Candidate> remaining;
  remaining.reserve(candidates.size());
  for (const Candidate& c : candidates) {
    if (!c.stake.IsZero()) remaining.push_back(c);
  }
  std::sort(remaining.begin(), remaining.end(),
            [](const Candidate& a, const Candidate& b) { return a.address < b.address; });
  for (size_t i = 1; i < remaining.size(); ++i) {
    if (remaining[i].address == remaining[i - 1].address) {
      return absl::InvalidArgumentError("a candidate address appears twice in the registry");
    }
  }
  // Duplicates among zero-stake entries do not matter: they are never candidates.
  Uint256 total;
  for (const Candidate& c : remaining) {
    if (AddOverflows(total, c.stake, &total)) {
      return absl::OutOfRangeError("total candidate stake exceeds 2^256 - 1");
    }
  }
  if (remaining.size() < n) {
    return absl::FailedPreconditionError("fewer candidates with stake than the committee size");
  }

  CommitteeDraws draws;
  const size_t wanted = n + backups + referees;
  for (uint64_t k = 0; k < wanted && !remaining.empty(); ++k) {
    const Uint256 hash = Uint256::FromBigEndian(CommitteeDrawHash(epoch_seed, request_id, k));
    const Uint256 u = Mod(hash, total).value();  // total > 0: remaining is non-empty
    Uint256 running;
    size_t pick = remaining.size();
    for (size_t i = 0; i < remaining.size(); ++i) {
      // Cannot overflow: running never exceeds total.
      running = CheckedAdd(running, remaining[i].stake).value();
      if (running > u) {
        pick = i;
        break;
      }
    }
    // u < total == the final running sum, so some candidate is always picked.
    const Address chosen = remaining[pick].address;
    total = CheckedSub(total, remaining[pick].stake).value();
    remaining.erase(remaining.begin() + static_cast<std::ptrdiff_t>(pick));
    if (k < n) {
      draws.committee.push_back(chosen);
    } else if (k < n + backups) {
      draws.backups.push_back(chosen);
    } else {
      draws.referees.push_back(chosen);
    }
  }
  return draws;
}

bool IsDrawn(const CommitteeDraws& draws, const Address& node) {
  for (const std::vector<Address>* list : {&draws.committee, &draws.backups, &draws.referees}) {
    if (std::find(list->begin(), list->end(), node) != list->end()) return true;
  }
  return false;
}

}  // namespace atoma::consensus
