// Fuzz target: safetensors framing and header parsing on arbitrary bytes. The input is used twice:
// as a whole file image (8-byte length prefix, header, data) and as a bare header whose data size
// comes from the input's first bytes. Accepted headers must satisfy the parser's promises; a
// broken promise aborts, so the fuzzer reports it like a crash.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string_view>
#include <tuple>
#include <vector>

#include "atoma/engine/safetensors.h"

namespace {

void CheckPromises(const atoma::engine::SafetensorsHeader& h, uint64_t data_size) {
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (const auto& [name, t] : h.tensors) {
    uint64_t numel = 1;
    for (int64_t d : t.shape) {
      if (d < 0) std::abort();
      numel *= static_cast<uint64_t>(d);
    }
    if (t.begin > t.end || t.end > data_size) std::abort();
    if (t.end - t.begin != numel * static_cast<uint64_t>(atoma::engine::DTypeSize(t.dtype))) {
      std::abort();
    }
    if (t.end > t.begin) ranges.emplace_back(t.begin, t.end);
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i) {
    if (ranges[i].first < ranges[i - 1].second) std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> bytes(data, size);
  uint64_t data_offset = 0;
  auto file = atoma::engine::ParseSafetensorsFile(bytes, &data_offset);
  if (file.ok()) {
    if (data_offset < 8 || data_offset > size) std::abort();
    CheckPromises(*file, size - data_offset);
  }
  // Bare header: the first byte picks a data size, the rest is the JSON.
  if (size >= 1) {
    const uint64_t data_size = uint64_t{data[0]} * 16;
    std::string_view header(reinterpret_cast<const char*>(data) + 1, size - 1);
    auto h = atoma::engine::ParseSafetensorsHeader(header, data_size);
    if (h.ok()) CheckPromises(*h, data_size);
  }
  return 0;
}
