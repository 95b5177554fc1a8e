// Fuzz target: ABI bytes from a possibly hostile node (eth_call return data, log data, revert
// data). The first byte picks a type list (flat, nested dynamic, arrays of dynamic tuples); the
// rest is decoded with it. AbiDecode must return a Status, never crash or allocate beyond the
// input's size; what it accepts encodes again and decodes to the same values. The whole input
// also goes through DecodeRevertReason (bounded text) and, as text, AbiType::Parse. Broken
// promises abort.
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string_view>
#include <vector>

#include "atoma/evm/abi.h"

namespace {

const std::vector<std::vector<atoma::evm::AbiType>>& TypeLists() {
  static const auto* lists = [] {
    auto* out = new std::vector<std::vector<atoma::evm::AbiType>>;
    for (const char* text :
         {"uint256", "bytes,bool,uint256[]", "uint256,uint32[],bytes10,bytes",
          "uint256[][],string[]", "(uint8,(bytes,string[])[],address)[2],int64,bytes32", "string",
          "(bytes32,(address,uint256)[])[]", "bytes[]", "int8,bool,address"}) {
      out->push_back(atoma::evm::ParseTypeList(text).value());
    }
    return out;
  }();
  return *lists;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace atoma::evm;
  const std::span<const uint8_t> input(data, size);
  const std::string reason = DecodeRevertReason(input);
  if (reason.size() > 1100) std::abort();
  (void)RevertErrorMessage(input);
  (void)AbiType::Parse(std::string_view(reinterpret_cast<const char*>(data), size));
  if (size == 0) return 0;

  const auto& types = TypeLists()[data[0] % TypeLists().size()];
  auto values = AbiDecode(types, input.subspan(1));
  if (!values.ok()) return 0;
  auto encoded = AbiEncode(types, *values);
  if (!encoded.ok()) std::abort();  // decoded values always fit their types
  // Sharing data between values is refused, so the canonical encoding stays within a small
  // multiple of the input (offset words and padding at most triple what is decoded).
  if (encoded->size() > 4 * (size - 1) + 4096) std::abort();
  auto again = AbiDecode(types, *encoded);
  if (!again.ok() || *again != *values) std::abort();
  return 0;
}
