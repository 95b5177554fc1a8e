// Small POSIX file helpers shared by the modelio sources: atomic writes and whole-file reads.
// Internal to atoma_modelio.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace atoma::engine::modelio {

// Writes a file atomically: the content goes to a temporary file in the same folder, which is
// fsynced and renamed over `path`, so readers see the old file or the new one, never a torn one.
// `produce(fd_writer)` writes the content through the callback it is given; a write error (or an
// error `produce` returns) removes the temporary file. Errors name the path.
using ChunkWriter = std::function<absl::Status(std::span<const uint8_t>)>;
absl::Status WriteFileAtomically(const std::filesystem::path& path,
                                 const std::function<absl::Status(const ChunkWriter&)>& produce);
absl::Status WriteFileAtomically(const std::filesystem::path& path, std::string_view content);

// Reads a whole (small) file. NOT_FOUND names a missing file; INVALID_ARGUMENT a file larger than
// `max_bytes` (files come from untrusted folders: a huge "index" must not exhaust memory).
absl::StatusOr<std::string> ReadSmallFile(const std::filesystem::path& path,
                                          uint64_t max_bytes = 64ull << 20);

// `name` quoted and C-escaped for an error message, cut to a readable length (names come from
// untrusted files).
// A file opened read-only (O_CLOEXEC) and its size at open time. The caller closes `fd`.
struct OpenedFile {
  int fd = -1;
  uint64_t size = 0;
};
// Errors name the path ("opening ...", "stat ...").
absl::StatusOr<OpenedFile> OpenReadOnly(const std::filesystem::path& path);

std::string QuoteForError(std::string_view name);

}  // namespace atoma::engine::modelio
