// ComputeModelDigest: the SHA-256 that names a model on the ledger (DESIGN §3).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "atoma/common/status.h"
#include "atoma/engine/model.h"
#include "file_util.h"

namespace atoma::engine {
namespace {

void PutBigEndian(uint64_t v, int bytes, crypto::Sha256& h) {
  uint8_t buf[8];
  for (int i = 0; i < bytes; ++i) buf[i] = static_cast<uint8_t>(v >> (8 * (bytes - 1 - i)));
  h.Update(std::span<const uint8_t>(buf, static_cast<size_t>(bytes)));
}

// Hashes (uint32 BE name length, name, uint64 BE size, bytes) of one file, streaming it so a
// multi-GB checkpoint never sits in memory.
// `hashed` counts the bytes of every file so far, for `progress` (may be null).
absl::Status HashFile(const std::filesystem::path& path, crypto::Sha256& h, uint64_t total,
                      uint64_t& hashed, const DigestProgressFn& progress) {
  ASSIGN_OR_RETURN(const modelio::OpenedFile file, modelio::OpenReadOnly(path));
  const int fd = file.fd;
  const std::string name = path.filename().string();
  const uint64_t size = file.size;
  PutBigEndian(name.size(), 4, h);
  h.Update(name);
  PutBigEndian(size, 8, h);
  std::vector<uint8_t> buf(1 << 20);
  uint64_t done = 0;
  absl::Status status;
  while (true) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      status = absl::ErrnoToStatus(errno, absl::StrCat("reading ", path.string()));
      break;
    }
    if (n == 0) break;
    done += static_cast<uint64_t>(n);
    if (done > size) break;
    h.Update(std::span<const uint8_t>(buf.data(), static_cast<size_t>(n)));
    hashed += static_cast<uint64_t>(n);
    if (progress) progress(std::min(hashed, total), total);
  }
  ::close(fd);
  RETURN_IF_ERROR(status);
  // The framing promised `size` bytes; a file that changed while we read it would give a digest
  // of no file at all.
  if (done != size) {
    return absl::AbortedError(
        absl::StrCat(path.string(), " changed size while being hashed (", size, " -> ", done, ")"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<crypto::Hash256> ComputeModelDigest(const std::filesystem::path& dir,
                                                   const DigestProgressFn& progress) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    return absl::NotFoundError(absl::StrCat("model folder ", dir.string(), " does not exist"));
  }
  std::vector<std::filesystem::path> files;
  for (const char* required : {"config.json", "tokenizer.json"}) {
    std::filesystem::path p = dir / required;
    if (!std::filesystem::is_regular_file(p, ec)) {
      return absl::NotFoundError(absl::StrCat("model digest: ", p.string(), " is missing"));
    }
    files.push_back(p);
  }
  for (const char* optional : {"tokenizer_config.json", "model.safetensors.index.json"}) {
    if (std::filesystem::is_regular_file(dir / optional, ec)) files.push_back(dir / optional);
  }
  std::vector<std::filesystem::path> weights;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    // is_regular_file follows symlinks: Hugging Face cache snapshots link every file to a blob.
    if (name.size() > 12 && name.ends_with(".safetensors") &&
        std::filesystem::is_regular_file(entry.path(), ec)) {
      weights.push_back(entry.path());
    }
  }
  if (ec) return absl::UnavailableError(absl::StrCat("listing ", dir.string(), ": ", ec.message()));
  if (weights.empty()) {
    return absl::NotFoundError(absl::StrCat("model digest: no *.safetensors in ", dir.string()));
  }
  // Byte-wise name order, the same on every machine and locale.
  std::sort(weights.begin(), weights.end(), [](const auto& a, const auto& b) {
    return a.filename().string() < b.filename().string();
  });
  files.insert(files.end(), weights.begin(), weights.end());
  // The total is only for progress; a file that changes size meanwhile fails in HashFile.
  uint64_t total = 0;
  if (progress) {
    for (const auto& f : files) {
      const uintmax_t size = std::filesystem::file_size(f, ec);
      if (!ec) total += size;
    }
    progress(0, total);
  }
  uint64_t hashed = 0;
  crypto::Sha256 h;
  for (const auto& f : files) RETURN_IF_ERROR(HashFile(f, h, total, hashed, progress));
  if (progress) progress(total, total);
  return h.Final();
}

}  // namespace atoma::engine
