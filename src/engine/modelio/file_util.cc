#include "file_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace atoma::engine::modelio {
namespace {

absl::Status Errno(int err, absl::string_view what, const std::filesystem::path& path) {
  return absl::ErrnoToStatus(err, absl::StrCat(what, " ", path.string()));
}

absl::Status WriteAll(int fd, std::span<const uint8_t> data, const std::filesystem::path& path) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return Errno(errno, "writing", path);
    }
    data = data.subspan(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status WriteFileAtomically(const std::filesystem::path& path,
                                 const std::function<absl::Status(const ChunkWriter&)>& produce) {
  // Unique per process and call, so concurrent writers of one path never share a temporary file.
  static std::atomic<uint64_t> counter{0};
  std::filesystem::path tmp = path;
  tmp += absl::StrCat(".tmp-", ::getpid(), "-", counter.fetch_add(1));
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Errno(errno, "creating", tmp);
  absl::Status status =
      produce([&](std::span<const uint8_t> chunk) { return WriteAll(fd, chunk, tmp); });
  // fsync before rename: otherwise a crash can leave the new name pointing at a file whose data
  // never reached the disk.
  if (status.ok() && ::fsync(fd) != 0) status = Errno(errno, "syncing", tmp);
  if (::close(fd) != 0 && status.ok()) status = Errno(errno, "closing", tmp);
  if (status.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) {
    status = Errno(errno, "renaming into", path);
  }
  if (!status.ok()) {
    ::unlink(tmp.c_str());
    return status;
  }
  // Make the rename itself durable. Best effort: some file systems refuse fsync on a directory.
  std::filesystem::path dir = path.parent_path();
  if (dir.empty()) dir = ".";
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return absl::OkStatus();
}

absl::Status WriteFileAtomically(const std::filesystem::path& path, std::string_view content) {
  return WriteFileAtomically(path, [&](const ChunkWriter& write) {
    return write({reinterpret_cast<const uint8_t*>(content.data()), content.size()});
  });
}

absl::StatusOr<OpenedFile> OpenReadOnly(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Errno(errno, "opening", path);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return Errno(err, "stat", path);
  }
  return OpenedFile{fd, static_cast<uint64_t>(st.st_size)};
}

absl::StatusOr<std::string> ReadSmallFile(const std::filesystem::path& path, uint64_t max_bytes) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Errno(errno, "opening", path);
  std::string out;
  char buf[1 << 16];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      return Errno(err, "reading", path);
    }
    if (n == 0) break;
    if (out.size() + static_cast<uint64_t>(n) > max_bytes) {
      ::close(fd);
      return absl::InvalidArgumentError(
          absl::StrCat(path.string(), " is larger than ", max_bytes, " bytes"));
    }
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

std::string QuoteForError(std::string_view name) {
  constexpr size_t kMax = 120;
  const std::string_view cut = name.substr(0, kMax);
  std::string escaped = absl::CHexEscape(absl::string_view(cut.data(), cut.size()));
  return absl::StrCat("'", escaped, name.size() > kMax ? "...'" : "'");
}

}  // namespace atoma::engine::modelio
