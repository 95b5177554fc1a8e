// Fuzz target: RLP bytes from the chain (raw transactions, anything a node sends). RlpDecode must
// return a Status, never crash or recurse without bound; whatever it accepts is canonical, so
// encoding the decoded tree again gives exactly the input. Broken promises abort.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "atoma/evm/rlp.h"

namespace {

std::vector<uint8_t> Encode(const atoma::evm::RlpItem& item) {
  if (!item.is_list) return atoma::evm::RlpEncodeBytes(item.bytes);
  std::vector<std::vector<uint8_t>> children;
  for (const auto& child : item.items) children.push_back(Encode(child));
  return atoma::evm::RlpEncodeList(children);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> input(data, size);
  auto item = atoma::evm::RlpDecode(input);
  if (!item.ok()) return 0;
  const std::vector<uint8_t> again = Encode(*item);
  if (!std::equal(again.begin(), again.end(), input.begin(), input.end())) std::abort();
  if (!item->is_list) {
    // Scalar readers agree with each other.
    auto u256 = item->AsUint();
    auto u64 = item->AsU64();
    if (u64.ok() && (!u256.ok() || *u256 != atoma::Uint256(*u64))) std::abort();
  }
  return 0;
}
