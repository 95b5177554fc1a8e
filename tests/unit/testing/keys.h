// Test-only: finding the key of an address among a test's keys, shared by the consensus, ledger and
// EVM ledger tests.
#pragma once

#include <span>

#include "atoma/consensus/committee.h"
#include "atoma/crypto/keys.h"
#include "gtest/gtest.h"

namespace atoma::test {

// The key among `keys` (not empty) whose address is `a`; a test failure (and the first key) when
// there is none.
inline const crypto::PrivateKey& KeyFor(std::span<const crypto::PrivateKey> keys,
                                        const crypto::Address& a) {
  for (const auto& k : keys) {
    if (k.address() == a) return k;
  }
  ADD_FAILURE() << "no key for " << crypto::AddressToString(a);
  return keys.front();
}

// The first of `keys` that `draws` does not name (committee, backups or referees); null if none.
inline const crypto::PrivateKey* FirstNotDrawn(std::span<const crypto::PrivateKey> keys,
                                               const consensus::CommitteeDraws& draws) {
  for (const auto& k : keys) {
    if (!consensus::IsDrawn(draws, k.address())) return &k;
  }
  return nullptr;
}

}  // namespace atoma::test
