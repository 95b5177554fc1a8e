// Canary fingerprint (DESIGN §4.2), written against the ModelRunner interface only.
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "atoma/common/status.h"
#include "atoma/engine/model.h"

namespace atoma::engine {
namespace {

constexpr int kCanaryPromptLen = 16;
constexpr int kCanarySteps = 8;

// Prompt ids spread over the vocabulary; a function of the vocab size alone.
std::vector<int32_t> CanaryPrompt(int64_t vocab, int len, uint64_t salt) {
  std::vector<int32_t> ids(len);
  for (int i = 0; i < len; ++i) {
    const uint64_t h = (static_cast<uint64_t>(i) + 1) * 2654435761ull + salt * 40503ull + 7;
    ids[i] = static_cast<int32_t>(h % static_cast<uint64_t>(vocab));
  }
  return ids;
}

int32_t Argmax(const float* logits, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i) {
    if (logits[i] > logits[best]) best = i;  // ties keep the lowest id
  }
  return static_cast<int32_t>(best);
}

// Sequences that hold slots and are freed on every exit path.
class SeqGuard {
 public:
  explicit SeqGuard(ModelRunner& runner) : runner_(runner) {}
  ~SeqGuard() {
    for (int s : seqs_) runner_.RemoveSequence(s);
  }
  void Add(int s) { seqs_.push_back(s); }

 private:
  ModelRunner& runner_;
  std::vector<int> seqs_;
};

// Runs the canary: prefill, then kCanarySteps greedy decode steps, the canary at row `canary_row`
// of a batch of `batch` sequences (the others have prompts of different lengths and decode their
// own greedy tokens). Returns the canary's logits: prefill's, then each step's.
absl::StatusOr<std::vector<float>> RunCanary(ModelRunner& runner, int batch, int canary_row) {
  const int64_t vocab = runner.config().vocab_size;
  SeqGuard guard(runner);
  std::vector<int> seqs(batch);
  std::vector<int32_t> next(batch);
  std::vector<float> out;
  for (int r = 0; r < batch; ++r) {
    const bool canary = r == canary_row;
    const int len = canary ? kCanaryPromptLen : 3 + 2 * r;
    const auto prompt = CanaryPrompt(vocab, len, canary ? 0 : r + 1);
    ASSIGN_OR_RETURN(seqs[r], runner.AddSequence(len + kCanarySteps + 1));
    guard.Add(seqs[r]);
    std::vector<float> logits;
    RETURN_IF_ERROR(runner.Prefill(seqs[r], prompt, &logits));
    if (static_cast<int64_t>(logits.size()) != vocab) {
      return absl::InternalError("canary: prefill returned the wrong number of logits");
    }
    next[r] = Argmax(logits.data(), vocab);
    if (canary) out.insert(out.end(), logits.begin(), logits.end());
  }
  std::vector<float> logits;
  for (int step = 0; step < kCanarySteps; ++step) {
    RETURN_IF_ERROR(runner.Decode(seqs, next, &logits));
    for (int r = 0; r < batch; ++r) next[r] = Argmax(logits.data() + r * vocab, vocab);
    out.insert(out.end(), logits.begin() + canary_row * vocab,
               logits.begin() + (canary_row + 1) * vocab);
  }
  return out;
}

}  // namespace

absl::StatusOr<crypto::Hash256> ComputeCanaryFingerprint(ModelRunner& runner) {
  ASSIGN_OR_RETURN(auto alone, RunCanary(runner, 1, 0));
  // A full batch: as many sequences as AddSequence grants (up to 16), the canary in the middle.
  int batch = 16;
  absl::StatusOr<std::vector<float>> crowded;
  while (true) {
    crowded = RunCanary(runner, batch, batch / 2);
    if (crowded.ok() || batch == 2 || !absl::IsResourceExhausted(crowded.status())) break;
    batch /= 2;
  }
  if (!crowded.ok()) return crowded.status();
  if (alone.size() != crowded->size() ||
      std::memcmp(alone.data(), crowded->data(), alone.size() * sizeof(float)) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("canary logits differ alone and in a batch of ", batch, " on ",
                     runner.path_description(), ": this node is not batch-invariant"));
  }
  crypto::Sha256 h;
  h.Update(std::string_view("atoma/canary\0", 13));
  const std::string path = runner.path_description();
  h.Update(path);
  h.Update(std::string_view("\0", 1));
  // fp32 logits as little-endian bytes.
  std::vector<uint8_t> bytes(alone.size() * 4);
  for (size_t i = 0; i < alone.size(); ++i) {
    uint32_t u;
    std::memcpy(&u, &alone[i], 4);
    for (int b = 0; b < 4; ++b) bytes[i * 4 + b] = static_cast<uint8_t>(u >> (8 * b));
  }
  h.Update(bytes);
  return h.Final();
}

}  // namespace atoma::engine
