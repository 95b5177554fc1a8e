#include "atoma/engine/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <set>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "atoma/common/status.h"
#include "file_util.h"
#include "nlohmann/json.hpp"

namespace atoma::engine {

using modelio::QuoteForError;

namespace {

struct DTypeEntry {
  DType dtype;
  const char* name;
  int size;
};
constexpr DTypeEntry kDTypes[] = {
    {DType::kF32, "F32", 4},   {DType::kF16, "F16", 2}, {DType::kBF16, "BF16", 2},
    {DType::kF64, "F64", 8},   {DType::kI64, "I64", 8}, {DType::kI32, "I32", 4},
    {DType::kI16, "I16", 2},   {DType::kI8, "I8", 1},   {DType::kU8, "U8", 1},
    {DType::kBool, "BOOL", 1},
};
// dtypes the format defines that we do not read: UNIMPLEMENTED rather than "malformed".
constexpr const char* kKnownUnsupported[] = {"F8_E4M3", "F8_E5M2", "U16", "U32", "U64"};

// A JSON number that is a non-negative integer, or nullopt.
std::optional<uint64_t> AsU64(const nlohmann::json& v) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer()) {
    int64_t i = v.get<int64_t>();
    if (i >= 0) return static_cast<uint64_t>(i);
  }
  return std::nullopt;
}

absl::Status TensorError(std::string_view name, absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("safetensors header: tensor ", QuoteForError(name), ": ", what));
}

absl::StatusOr<TensorInfo> ParseTensor(const std::string& name, const nlohmann::json& v,
                                       uint64_t data_size) {
  if (!v.is_object()) return TensorError(name, "entry is not an object");
  auto dtype_it = v.find("dtype");
  if (dtype_it == v.end() || !dtype_it->is_string()) {
    return TensorError(name, "missing or non-string 'dtype'");
  }
  const std::string& dtype_name = dtype_it->get_ref<const std::string&>();
  std::optional<DType> dtype = DTypeFromName(dtype_name);
  if (!dtype) {
    for (const char* unsupported : kKnownUnsupported) {
      if (dtype_name == unsupported) {
        return absl::UnimplementedError(absl::StrCat("safetensors header: tensor ",
                                                     QuoteForError(name), ": dtype ", dtype_name,
                                                     " is not supported"));
      }
    }
    return TensorError(name, absl::StrCat("unknown dtype ", QuoteForError(dtype_name)));
  }
  TensorInfo info;
  info.dtype = *dtype;

  auto shape_it = v.find("shape");
  if (shape_it == v.end() || !shape_it->is_array()) {
    return TensorError(name, "missing or non-array 'shape'");
  }
  // Element count with overflow checks: a hostile header can name any dimensions.
  uint64_t numel = 1;
  for (const auto& d : *shape_it) {
    std::optional<uint64_t> dim = AsU64(d);
    if (!dim || *dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return TensorError(name, "shape entries must be non-negative integers");
    }
    if (__builtin_mul_overflow(numel, *dim, &numel)) {
      return TensorError(name, "shape element count overflows");
    }
    info.shape.push_back(static_cast<int64_t>(*dim));
  }
  uint64_t nbytes = 0;
  if (__builtin_mul_overflow(numel, static_cast<uint64_t>(DTypeSize(info.dtype)), &nbytes)) {
    return TensorError(name, "shape byte size overflows");
  }

  auto off_it = v.find("data_offsets");
  if (off_it == v.end() || !off_it->is_array() || off_it->size() != 2) {
    return TensorError(name, "'data_offsets' must be an array of two integers");
  }
  std::optional<uint64_t> begin = AsU64((*off_it)[0]);
  std::optional<uint64_t> end = AsU64((*off_it)[1]);
  if (!begin || !end) return TensorError(name, "'data_offsets' must be non-negative integers");
  if (*begin > *end) {
    return TensorError(name, absl::StrCat("data_offsets [", *begin, ", ", *end, "] are reversed"));
  }
  if (*end - *begin != nbytes) {
    return TensorError(name,
                       absl::StrCat("data_offsets [", *begin, ", ", *end, "] hold ", *end - *begin,
                                    " bytes but shape [", absl::StrJoin(info.shape, ","), "] of ",
                                    DTypeName(info.dtype), " needs ", nbytes));
  }
  if (*end > data_size) {
    return TensorError(name, absl::StrCat("data ends at byte ", *end, " but the data buffer holds ",
                                          data_size, " bytes (truncated file or lying offsets)"));
  }
  info.begin = *begin;
  info.end = *end;
  return info;
}

}  // namespace

int DTypeSize(DType dtype) {
  for (const auto& e : kDTypes) {
    if (e.dtype == dtype) return e.size;
  }
  return 0;
}

const char* DTypeName(DType dtype) {
  for (const auto& e : kDTypes) {
    if (e.dtype == dtype) return e.name;
  }
  return "?";
}

std::optional<DType> DTypeFromName(std::string_view name) {
  for (const auto& e : kDTypes) {
    if (name == e.name) return e.dtype;
  }
  return std::nullopt;
}

absl::StatusOr<SafetensorsHeader> ParseSafetensorsHeader(std::string_view header_json,
                                                         uint64_t data_size) {
  if (header_json.size() > kMaxSafetensorsHeaderBytes) {
    return absl::InvalidArgumentError(absl::StrCat("safetensors header of ", header_json.size(),
                                                   " bytes exceeds the limit of ",
                                                   kMaxSafetensorsHeaderBytes));
  }
  try {
    // Non-throwing parse: malformed JSON gives a discarded value. nlohmann's parser and destructor
    // are iterative, so deep nesting cannot overflow the stack.
    nlohmann::json j = nlohmann::json::parse(header_json.begin(), header_json.end(), nullptr,
                                             /*allow_exceptions=*/false);
    if (j.is_discarded()) return absl::InvalidArgumentError("safetensors header is not valid JSON");
    if (!j.is_object()) {
      return absl::InvalidArgumentError("safetensors header is not a JSON object");
    }
    SafetensorsHeader header;
    for (const auto& [key, value] : j.items()) {
      if (key == "__metadata__") {
        if (!value.is_object()) {
          return absl::InvalidArgumentError("safetensors header: __metadata__ is not an object");
        }
        for (const auto& [mk, mv] : value.items()) {
          if (!mv.is_string()) {
            return absl::InvalidArgumentError(
                absl::StrCat("safetensors header: __metadata__ value of ", QuoteForError(mk),
                             " is not a string"));
          }
          header.metadata[mk] = mv.get<std::string>();
        }
        continue;
      }
      ASSIGN_OR_RETURN(TensorInfo info, ParseTensor(key, value, data_size));
      header.tensors.emplace(key, std::move(info));
    }
    // No two tensors may share bytes: sort the non-empty ranges and compare neighbours.
    std::vector<std::tuple<uint64_t, uint64_t, const std::string*>> ranges;
    for (const auto& [name, info] : header.tensors) {
      if (info.end > info.begin) ranges.emplace_back(info.begin, info.end, &name);
    }
    std::sort(ranges.begin(), ranges.end());
    for (size_t i = 1; i < ranges.size(); ++i) {
      if (std::get<0>(ranges[i]) < std::get<1>(ranges[i - 1])) {
        return TensorError(*std::get<2>(ranges[i]),
                           absl::StrCat("data_offsets overlap those of tensor ",
                                        QuoteForError(*std::get<2>(ranges[i - 1]))));
      }
    }
    return header;
  } catch (const std::exception& e) {
    // Only allocation failure should get here; keep the never-crash promise anyway.
    return absl::InvalidArgumentError(absl::StrCat("safetensors header: ", e.what()));
  }
}

absl::StatusOr<SafetensorsHeader> ParseSafetensorsFile(std::span<const uint8_t> file,
                                                       uint64_t* data_offset) {
  if (file.size() < 8) {
    return absl::InvalidArgumentError(absl::StrCat(
        "file is ", file.size(), " bytes, shorter than the 8-byte header length (truncated)"));
  }
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | file[static_cast<size_t>(i)];
  if (n > kMaxSafetensorsHeaderBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("header length ", n, " exceeds the limit of ", kMaxSafetensorsHeaderBytes));
  }
  if (n > file.size() - 8) {
    return absl::InvalidArgumentError(absl::StrCat("header length ", n, " runs past the end of a ",
                                                   file.size(), "-byte file (truncated)"));
  }
  std::string_view header(reinterpret_cast<const char*>(file.data()) + 8, n);
  if (data_offset != nullptr) *data_offset = 8 + n;
  return ParseSafetensorsHeader(header, file.size() - 8 - n);
}

// ---------------------------------------------------------------------------------------------
// WeightStore

namespace {

// A read-only private mapping of a whole file; unmapped on destruction.
class MappedFile {
 public:
  static absl::StatusOr<std::unique_ptr<MappedFile>> Open(const std::filesystem::path& path) {
    ASSIGN_OR_RETURN(const modelio::OpenedFile opened, modelio::OpenReadOnly(path));
    const int fd = opened.fd;
    auto file = std::unique_ptr<MappedFile>(new MappedFile());
    file->size_ = static_cast<size_t>(opened.size);
    if (file->size_ > 0) {
      void* p = ::mmap(nullptr, file->size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p == MAP_FAILED) {
        int err = errno;
        ::close(fd);
        return absl::ErrnoToStatus(err, absl::StrCat("mapping ", path.string()));
      }
      file->data_ = static_cast<const uint8_t*>(p);
    }
    // The mapping keeps the file alive; the descriptor is not needed.
    ::close(fd);
    return file;
  }
  ~MappedFile() {
    if (data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), size_);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  std::span<const uint8_t> bytes() const { return {data_, size_}; }

 private:
  MappedFile() = default;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

struct Shard {
  std::filesystem::path path;
  std::string file_name;
  std::unique_ptr<MappedFile> map;
  SafetensorsHeader header;
  uint64_t data_offset = 0;
};

class WeightStoreImpl final : public WeightStore {
 public:
  absl::StatusOr<TensorView> Get(std::string_view name) const override {
    auto it = tensors_.find(name);
    if (it == tensors_.end()) {
      return absl::NotFoundError(
          absl::StrCat("tensor ", QuoteForError(name), " not in ", dir_.string()));
    }
    const auto& [shard_index, info] = it->second;
    const Shard& shard = shards_[shard_index];
    TensorView view;
    view.name = it->first;
    view.file = shard.file_name;
    view.dtype = info->dtype;
    view.shape = info->shape;
    view.bytes =
        shard.map->bytes().subspan(shard.data_offset + info->begin, info->end - info->begin);
    return view;
  }
  bool Has(std::string_view name) const override { return tensors_.contains(name); }
  std::vector<std::string> Names() const override {
    std::vector<std::string> names;
    names.reserve(tensors_.size());
    for (const auto& [name, unused] : tensors_) names.push_back(name);
    return names;
  }
  std::vector<std::filesystem::path> Files() const override {
    std::vector<std::filesystem::path> files;
    for (const Shard& s : shards_) files.push_back(s.path);
    return files;
  }

  // Maps and parses one file, appending it to shards_. Errors name the file.
  absl::StatusOr<size_t> AddShard(const std::filesystem::path& path) {
    Shard shard;
    shard.path = path;
    shard.file_name = path.filename().string();
    auto map = MappedFile::Open(path);
    if (!map.ok()) return map.status();
    shard.map = *std::move(map);
    auto header = ParseSafetensorsFile(shard.map->bytes(), &shard.data_offset);
    if (!header.ok()) {
      return absl::Status(header.status().code(),
                          absl::StrCat(path.string(), ": ", header.status().message()));
    }
    shard.header = *std::move(header);
    shards_.push_back(std::move(shard));
    return shards_.size() - 1;
  }

  std::filesystem::path dir_;
  std::vector<Shard> shards_;  // sorted by file name
  // Tensor name -> (shard index, info inside that shard's header).
  std::map<std::string, std::pair<size_t, const TensorInfo*>, std::less<>> tensors_;
};

constexpr char kIndexName[] = "model.safetensors.index.json";
constexpr char kSingleName[] = "model.safetensors";

absl::StatusOr<std::map<std::string, std::string>> ReadIndex(const std::filesystem::path& path) {
  ASSIGN_OR_RETURN(std::string text, modelio::ReadSmallFile(path));
  auto bad = [&](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat(path.string(), ": ", what));
  };
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return bad("not valid JSON");
  if (!j.is_object()) return bad("not a JSON object");
  auto wm = j.find("weight_map");
  if (wm == j.end() || !wm->is_object()) return bad("missing or non-object 'weight_map'");
  std::map<std::string, std::string> map;
  for (const auto& [tensor, file] : wm->items()) {
    if (!file.is_string()) {
      return bad(
          absl::StrCat("weight_map entry of tensor ", QuoteForError(tensor), " is not a string"));
    }
    const std::string& f = file.get_ref<const std::string&>();
    // Shards must be files of this folder: an index must not make us map arbitrary paths.
    if (f.empty() || f == "." || f == ".." || f.find('/') != std::string::npos ||
        f.find('\0') != std::string::npos) {
      return bad(absl::StrCat("weight_map names shard ", QuoteForError(f), " for tensor ",
                              QuoteForError(tensor), ", which is not a plain file name"));
    }
    // The model digest covers *.safetensors files only (ComputeModelDigest): a shard under any
    // other name would be weights the ledger's model digest does not name.
    if (f.size() <= 12 || !f.ends_with(".safetensors")) {
      return bad(absl::StrCat("weight_map names shard ", QuoteForError(f), " for tensor ",
                              QuoteForError(tensor),
                              ", whose name does not end in \".safetensors\" (the model digest "
                              "covers only those)"));
    }
    map[tensor] = f;
  }
  if (map.empty()) return bad("weight_map is empty");
  return map;
}

}  // namespace

absl::StatusOr<std::unique_ptr<WeightStore>> WeightStore::Open(const std::filesystem::path& dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    return absl::NotFoundError(absl::StrCat("model folder ", dir.string(), " does not exist"));
  }
  auto store = std::make_unique<WeightStoreImpl>();
  store->dir_ = dir;
  const std::filesystem::path index_path = dir / kIndexName;
  if (std::filesystem::exists(index_path, ec)) {
    ASSIGN_OR_RETURN(auto weight_map, ReadIndex(index_path));
    std::set<std::string> shard_names;
    for (const auto& [tensor, file] : weight_map) shard_names.insert(file);
    std::map<std::string, size_t> shard_index;
    for (const std::string& file : shard_names) {
      std::filesystem::path p = dir / file;
      if (!std::filesystem::is_regular_file(p, ec)) {
        // Name a tensor that needs it, so the message says why the shard matters.
        std::string tensor;
        for (const auto& [t, f] : weight_map) {
          if (f == file) {
            tensor = t;
            break;
          }
        }
        return absl::NotFoundError(absl::StrCat(index_path.string(), " names shard ", file,
                                                " (for tensor ", QuoteForError(tensor), ") but ",
                                                p.string(), " does not exist"));
      }
      ASSIGN_OR_RETURN(shard_index[file], store->AddShard(p));
    }
    for (const auto& [tensor, file] : weight_map) {
      size_t si = shard_index.at(file);
      const auto& tensors = store->shards_[si].header.tensors;
      auto it = tensors.find(tensor);
      if (it == tensors.end()) {
        return absl::NotFoundError(absl::StrCat(index_path.string(), " places tensor ",
                                                QuoteForError(tensor), " in ", file,
                                                ", which does not contain it"));
      }
      store->tensors_.emplace(tensor, std::make_pair(si, &it->second));
    }
    return store;
  }
  const std::filesystem::path single = dir / kSingleName;
  if (!std::filesystem::exists(single, ec)) {
    return absl::NotFoundError(
        absl::StrCat("no ", kSingleName, " or ", kIndexName, " in ", dir.string()));
  }
  ASSIGN_OR_RETURN(size_t si, store->AddShard(single));
  for (const auto& [name, info] : store->shards_[si].header.tensors) {
    store->tensors_.emplace(name, std::make_pair(si, &info));
  }
  return store;
}

// ---------------------------------------------------------------------------------------------
// SafetensorsWriter

absl::StatusOr<uint64_t> SafetensorsWriter::CheckNew(const std::string& name, DType dtype,
                                                     const std::vector<int64_t>& shape) const {
  if (name.empty() || name == "__metadata__") {
    return absl::InvalidArgumentError(absl::StrCat("invalid tensor name ", QuoteForError(name)));
  }
  for (const Entry& e : entries_) {
    if (e.name == name) {
      return absl::InvalidArgumentError(absl::StrCat("duplicate tensor ", QuoteForError(name)));
    }
  }
  uint64_t numel = 1;
  for (int64_t d : shape) {
    if (d < 0 || __builtin_mul_overflow(numel, static_cast<uint64_t>(d), &numel)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tensor ", QuoteForError(name), ": bad shape [", absl::StrJoin(shape, ","), "]"));
    }
  }
  uint64_t nbytes = 0;
  if (__builtin_mul_overflow(numel, static_cast<uint64_t>(DTypeSize(dtype)), &nbytes)) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor ", QuoteForError(name), ": byte size overflows"));
  }
  return nbytes;
}

absl::Status SafetensorsWriter::Add(std::string name, DType dtype, std::vector<int64_t> shape,
                                    std::span<const uint8_t> bytes) {
  ASSIGN_OR_RETURN(uint64_t nbytes, CheckNew(name, dtype, shape));
  if (bytes.size() != nbytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor ", QuoteForError(name), ": shape [", absl::StrJoin(shape, ","),
                     "] of ", DTypeName(dtype), " needs ", nbytes, " bytes, got ", bytes.size()));
  }
  entries_.push_back(Entry{std::move(name), dtype, std::move(shape), nbytes,
                           std::vector<uint8_t>(bytes.begin(), bytes.end()), nullptr});
  return absl::OkStatus();
}

absl::Status SafetensorsWriter::AddGenerated(std::string name, DType dtype,
                                             std::vector<int64_t> shape, FillFn fill) {
  ASSIGN_OR_RETURN(uint64_t nbytes, CheckNew(name, dtype, shape));
  if (!fill) return absl::InvalidArgumentError("AddGenerated: empty fill function");
  entries_.push_back(Entry{std::move(name), dtype, std::move(shape), nbytes, {}, std::move(fill)});
  return absl::OkStatus();
}

void SafetensorsWriter::SetMetadata(std::string key, std::string value) {
  metadata_[std::move(key)] = std::move(value);
}

std::vector<const SafetensorsWriter::Entry*> SafetensorsWriter::Layout() const {
  std::vector<const Entry*> order;
  for (const Entry& e : entries_) order.push_back(&e);
  // Larger elements first, so with an 8-aligned data start every tensor is aligned to its element
  // size (what the reference writer does too).
  std::sort(order.begin(), order.end(), [](const Entry* a, const Entry* b) {
    int sa = DTypeSize(a->dtype), sb = DTypeSize(b->dtype);
    if (sa != sb) return sa > sb;
    return a->name < b->name;
  });
  return order;
}

std::string SafetensorsWriter::HeaderJson(const std::vector<const Entry*>& order) const {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  if (!metadata_.empty()) {
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata_) meta[k] = v;
    j["__metadata__"] = std::move(meta);
  }
  uint64_t offset = 0;
  for (const Entry* e : order) {
    nlohmann::ordered_json t = nlohmann::ordered_json::object();
    t["dtype"] = DTypeName(e->dtype);
    t["shape"] = e->shape;
    t["data_offsets"] = {offset, offset + e->nbytes};
    j[e->name] = std::move(t);
    offset += e->nbytes;
  }
  // Invalid UTF-8 in names is replaced rather than thrown on.
  std::string text = j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
  // Pad with spaces (valid JSON whitespace) so the data buffer starts 8-byte aligned.
  text.append((8 - text.size() % 8) % 8, ' ');
  return text;
}

uint64_t SafetensorsWriter::FileSize() const {
  uint64_t total = 8 + HeaderJson(Layout()).size();
  for (const Entry& e : entries_) total += e.nbytes;
  return total;
}

absl::Status SafetensorsWriter::Write(const std::filesystem::path& path) const {
  const std::vector<const Entry*> order = Layout();
  const std::string header = HeaderJson(order);
  uint64_t total = 8 + header.size();
  for (const Entry* e : order) total += e->nbytes;
  return modelio::WriteFileAtomically(path, [&](const modelio::ChunkWriter& write) {
    uint8_t len[8];
    for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(header.size() >> (8 * i));
    RETURN_IF_ERROR(write(len));
    RETURN_IF_ERROR(write({reinterpret_cast<const uint8_t*>(header.data()), header.size()}));
    uint64_t written = 8 + header.size();
    constexpr uint64_t kChunk = 4 << 20;
    std::vector<uint8_t> buf;
    for (const Entry* e : order) {
      if (!e->fill) {
        RETURN_IF_ERROR(write(e->bytes));
        written += e->nbytes;
        if (progress_) progress_(written, total);
        continue;
      }
      for (uint64_t off = 0; off < e->nbytes; off += kChunk) {
        buf.resize(std::min(kChunk, e->nbytes - off));
        e->fill(off, buf);
        RETURN_IF_ERROR(write(buf));
        written += buf.size();
        if (progress_) progress_(written, total);
      }
    }
    return absl::OkStatus();
  });
}

}  // namespace atoma::engine
