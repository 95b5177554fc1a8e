// safetensors files: header parsing (pure, fuzzed), memory-mapped reading of single and sharded
// checkpoints, and writing (model synthesis, tests). No torch here.
//
// Format: 8-byte little-endian header length N, N bytes of JSON header
// {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {...}},
// then the data buffer; offsets are relative to the start of the data buffer.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace atoma::engine {

enum class DType { kF32, kF16, kBF16, kF64, kI64, kI32, kI16, kI8, kU8, kBool };
// Bytes per element.
int DTypeSize(DType dtype);
const char* DTypeName(DType dtype);  // "F32", "BF16", ...

struct TensorInfo {
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // offset in the data buffer
  uint64_t end = 0;
};

struct SafetensorsHeader {
  std::map<std::string, TensorInfo> tensors;
  std::map<std::string, std::string> metadata;
};

// Parses and validates a header: JSON shape, known dtypes, non-negative shapes whose byte size
// matches the offsets, offsets within `data_size`, no overlapping tensors. Errors name the tensor.
// Never crashes on any input (fuzzed: tests/fuzz/safetensors_fuzz.cc).
absl::StatusOr<SafetensorsHeader> ParseSafetensorsHeader(std::string_view header_json,
                                                         uint64_t data_size);

// A tensor's bytes inside a mapped file. Valid while the WeightStore that returned it lives.
struct TensorView {
  std::string name;
  std::string file;  // file name (for error messages)
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  std::span<const uint8_t> bytes;
};

// All tensors of a checkpoint folder: model.safetensors, or the shards listed by
// model.safetensors.index.json. Files are memory-mapped read-only. Immutable once opened;
// const methods are thread-safe.
class WeightStore {
 public:
  virtual ~WeightStore() = default;
  // Errors name the file: missing, truncated (shorter than its header says), bad header, an index
  // that names a missing shard or a tensor the shard lacks.
  static absl::StatusOr<std::unique_ptr<WeightStore>> Open(const std::filesystem::path& dir);

  // NOT_FOUND names the tensor.
  virtual absl::StatusOr<TensorView> Get(std::string_view name) const = 0;
  virtual bool Has(std::string_view name) const = 0;
  virtual std::vector<std::string> Names() const = 0;
  // The safetensors files, sorted by name.
  virtual std::vector<std::filesystem::path> Files() const = 0;
};

// Builds a safetensors file in memory and writes it. Not thread-safe.
class SafetensorsWriter {
 public:
  // `bytes` must hold exactly product(shape) * DTypeSize(dtype) bytes (INVALID_ARGUMENT otherwise).
  absl::Status Add(std::string name, DType dtype, std::vector<int64_t> shape,
                   std::span<const uint8_t> bytes);
  void SetMetadata(std::string key, std::string value);
  // Writes atomically (temp file + rename).
  absl::Status Write(const std::filesystem::path& path) const;

 private:
  struct Entry {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    std::vector<uint8_t> bytes;
  };
  std::vector<Entry> entries_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace atoma::engine
