// Stand-alone driver for fuzz targets when the compiler has no libFuzzer (g++): replays every file
// named on the command line (or in directories named there), then runs N pseudo-random mutations
// of them (ATOMA_FUZZ_ITERATIONS, default 20000) so ctest exercises each target on every run.
// With clang, build with -DATOMA_BUILD_FUZZ=ON to link the real libFuzzer instead.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

std::vector<std::string> LoadInputs(int argc, char** argv) {
  std::vector<std::string> inputs;
  auto add_file = [&](const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    inputs.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  };
  for (int i = 1; i < argc; ++i) {
    std::filesystem::path p(argv[i]);
    if (std::filesystem::is_directory(p)) {
      for (const auto& e : std::filesystem::directory_iterator(p)) {
        if (e.is_regular_file()) add_file(e.path());
      }
    } else {
      add_file(p);
    }
  }
  if (inputs.empty()) inputs.emplace_back();
  return inputs;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> inputs = LoadInputs(argc, argv);
  for (const std::string& in : inputs) {
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(in.data()), in.size());
  }
  long iterations = 20000;
  if (const char* env = std::getenv("ATOMA_FUZZ_ITERATIONS")) iterations = std::atol(env);
  std::mt19937_64 rng(12345);
  for (long i = 0; i < iterations; ++i) {
    std::string s = inputs[rng() % inputs.size()];
    int edits = 1 + static_cast<int>(rng() % 8);
    for (int e = 0; e < edits; ++e) {
      switch (rng() % 4) {
        case 0:  // flip a byte
          if (!s.empty()) s[rng() % s.size()] = static_cast<char>(rng());
          break;
        case 1:  // truncate
          if (!s.empty()) s.resize(rng() % s.size());
          break;
        case 2:  // insert a byte
          s.insert(s.begin() + static_cast<long>(s.empty() ? 0 : rng() % s.size()),
                   static_cast<char>(rng()));
          break;
        case 3:  // duplicate a slice
          if (!s.empty()) {
            size_t a = rng() % s.size(), n = rng() % (s.size() - a + 1);
            s.insert(rng() % (s.size() + 1), s.substr(a, n));
          }
          break;
      }
    }
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  }
  std::cout << "fuzz driver: " << inputs.size() << " seeds, " << iterations << " mutations, ok\n";
  return 0;
}
