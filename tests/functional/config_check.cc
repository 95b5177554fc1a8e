// atoma_config_check: parses atoma-node configuration files with the node's own parser
// (config::LoadConfigFile: YAML syntax, unknown keys, ranges, relations; the files a config names
// need not exist) and prints, as one JSON array (null for a file that fails), the values
// container_files_test.py compares with the container and systemd files. A test helper, not an
// operator tool.
//
//   atoma_config_check --defaults        the built-in defaults (an empty NodeConfig)
//   atoma_config_check FILE...           each file; exit 1 (the error on stderr) if one fails
#include <cstdio>
#include <string>

#include "atoma/config/config.h"
#include "nlohmann/json.hpp"

namespace {

nlohmann::json Describe(const atoma::config::NodeConfig& c) {
  nlohmann::json models = nlohmann::json::array();
  for (const auto& m : c.models) models.push_back({{"id", m.id}, {"path", m.path.string()}});
  return {
      {"node.key_file", c.node.key_file.string()},
      {"node.data_dir", c.node.data_dir.string()},
      {"api.listen", c.api.listen},
      {"http.listen", c.http.listen},
      {"metrics.listen", c.metrics.listen},
      {"ledger.backend", c.ledger.backend},
      {"ledger.path", c.ledger.path.string()},
      {"consensus.advertise", c.consensus.advertise},
      {"shutdown.drain_deadline_ms", c.shutdown.drain_deadline_ms},
      {"models", models},
  };
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: atoma_config_check --defaults | FILE...\n");
    return 2;
  }
  nlohmann::json out = nlohmann::json::array();
  int failed = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--defaults") {
      out.push_back(Describe(atoma::config::NodeConfig{}));
      continue;
    }
    auto config = atoma::config::LoadConfigFile(arg);
    if (!config.ok()) {
      std::fprintf(stderr, "%s\n", config.status().ToString().c_str());
      out.push_back(nullptr);  // keeps each file's position in the array
      ++failed;
      continue;
    }
    out.push_back(Describe(*config));
  }
  std::printf("%s\n", out.dump(2).c_str());
  return failed == 0 ? 0 : 1;
}
