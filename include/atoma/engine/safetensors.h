// safetensors files: header parsing (pure, fuzzed), memory-mapped reading of single and sharded
// checkpoints, and writing (model synthesis, tests). No torch here.
//
// Format: 8-byte little-endian header length N, N bytes of JSON header
// {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {...}},
// then the data buffer; offsets are relative to the start of the data buffer.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
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
// The dtype a safetensors name ("F32", "BF16", ...) denotes, or nullopt for names we do not read.
std::optional<DType> DTypeFromName(std::string_view name);

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

// Largest header we accept (the reference implementation's limit too): a larger length prefix is
// corrupt or hostile, and accepting it would make us parse hundreds of MB of JSON.
inline constexpr uint64_t kMaxSafetensorsHeaderBytes = 100ull << 20;

// Parses and validates a header: JSON shape, known dtypes, non-negative shapes whose byte size
// matches the offsets, offsets within `data_size`, no overlapping tensors. Errors name the tensor.
// Never crashes on any input (fuzzed: tests/fuzz/safetensors_fuzz.cc).
absl::StatusOr<SafetensorsHeader> ParseSafetensorsHeader(std::string_view header_json,
                                                         uint64_t data_size);

// Parses a whole file image: the 8-byte length prefix (INVALID_ARGUMENT when the file is shorter
// than 8 bytes, the length exceeds kMaxSafetensorsHeaderBytes or runs past the end of the file),
// then ParseSafetensorsHeader over the bytes after the header. Sets `*data_offset` (may be null) to
// where the data buffer starts. Pure and fuzzed like ParseSafetensorsHeader.
absl::StatusOr<SafetensorsHeader> ParseSafetensorsFile(std::span<const uint8_t> file,
                                                       uint64_t* data_offset);

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
  // that names a missing shard or a tensor the shard lacks. When the index exists it is the source
  // of truth: the store holds exactly the tensors of its weight_map (shard file names must be
  // plain names inside `dir`).
  static absl::StatusOr<std::unique_ptr<WeightStore>> Open(const std::filesystem::path& dir);

  // NOT_FOUND names the tensor.
  virtual absl::StatusOr<TensorView> Get(std::string_view name) const = 0;
  virtual bool Has(std::string_view name) const = 0;
  // Sorted.
  virtual std::vector<std::string> Names() const = 0;
  // The safetensors files, sorted by name.
  virtual std::vector<std::filesystem::path> Files() const = 0;
};

// Builds a safetensors file and writes it. Tensors are laid out contiguously (as the reference
// implementation requires), ordered by element size descending then name, after a header padded to
// a multiple of 8 bytes, so every tensor is aligned to its element size. Not thread-safe.
class SafetensorsWriter {
 public:
  // Fills `out` with the tensor's bytes [byte_offset, byte_offset + out.size()); called with
  // consecutive ranges while writing.
  using FillFn = std::function<void(uint64_t byte_offset, std::span<uint8_t> out)>;
  // Called with (bytes written, total bytes) while writing.
  using ProgressFn = std::function<void(uint64_t written, uint64_t total)>;

  // `bytes` must hold exactly product(shape) * DTypeSize(dtype) bytes (INVALID_ARGUMENT otherwise,
  // and for an empty, duplicate or reserved name, or a negative dimension). Copies `bytes`.
  absl::Status Add(std::string name, DType dtype, std::vector<int64_t> shape,
                   std::span<const uint8_t> bytes);
  // Like Add, but the bytes are produced by `fill` while Write streams the file, so files larger
  // than memory can be written. `fill` must be deterministic if the file is to be.
  absl::Status AddGenerated(std::string name, DType dtype, std::vector<int64_t> shape, FillFn fill);
  void SetMetadata(std::string key, std::string value);
  void SetProgress(ProgressFn progress) { progress_ = std::move(progress); }
  // Total file size Write will produce.
  uint64_t FileSize() const;
  // Writes atomically (temp file in the same folder, fsync, rename). Errors name the path.
  absl::Status Write(const std::filesystem::path& path) const;

 private:
  struct Entry {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    uint64_t nbytes = 0;
    std::vector<uint8_t> bytes;  // when added with Add
    FillFn fill;                 // when added with AddGenerated
  };
  absl::StatusOr<uint64_t> CheckNew(const std::string& name, DType dtype,
                                    const std::vector<int64_t>& shape) const;
  // Entries in file order and the header text (padded).
  std::vector<const Entry*> Layout() const;
  std::string HeaderJson(const std::vector<const Entry*>& order) const;

  std::vector<Entry> entries_;
  std::map<std::string, std::string> metadata_;
  ProgressFn progress_;
};

}  // namespace atoma::engine
