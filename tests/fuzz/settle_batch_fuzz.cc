// Fuzz target: the calldata of settle / settleCosigned transactions read back from the chain
// (ListSettlements decodes anyone's settlement transactions). The first input byte picks the form
// (even: settle, odd: settleCosigned). DecodeSettleBatchRequests must return a Status or a prefix
// of the batch's requests, never crash; it never returns more requests than the batch's count.
#include <cstdint>
#include <cstdlib>
#include <span>

#include "codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const bool cosigned = (data[0] & 1) != 0;
  const std::span<const uint8_t> batch(data + 1, size - 1);
  auto requests = atoma::ledger::evm_backend::DecodeSettleBatchRequests(batch, cosigned);
  if (!requests.ok()) return 0;
  const size_t count = (static_cast<size_t>(batch[0]) << 8) | batch[1];
  if (requests->size() > count) std::abort();
  return 0;
}
