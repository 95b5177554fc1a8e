#include <cstdio>

#include "commands.h"

namespace atoma::cli {

void Fail(std::string_view message, int exit_code) {
  std::fprintf(stderr, "atoma-cli: %.*s\n", static_cast<int>(message.size()), message.data());
  throw CLI::RuntimeError(exit_code);
}

void Fail(const absl::Status& status, int exit_code) {
  Fail(std::string_view(status.message().data(), status.message().size()), exit_code);
}

}  // namespace atoma::cli
