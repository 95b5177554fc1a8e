// Outputs this node computes for consensus requests, once per request id: a member that is asked
// again (a new committee after a replacement, a relay of its tokens, a release to a peer) reuses
// the output instead of running the model again. Each execution runs on the engine's queue; a
// reader thread per execution collects the engine's events so that any number of callers can
// follow them from the start.
//
// Thread-safety: all methods thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "atoma/consensus/request.h"
#include "atoma/engine/engine.h"

namespace atoma::peer {

// The engine request a consensus request means: request_key = request id (so the sampling PRNG is
// keyed by it), sampling parameters from millionths, the stop conditions, max_tokens. Every member
// converts the same way, so every member of an echelon computes the same tokens.
engine::GenerateRequest ToEngineRequest(const consensus::ConsensusRequest& request,
                                        const crypto::Hash256& request_id);

class Execution {
 public:
  enum class Wait { kEvent, kDone, kTimeout };
  // The index-th token event (0-based), kDone when the execution ended with fewer events.
  Wait Next(size_t index, engine::StreamEvent* event, std::chrono::milliseconds timeout) const;
  // Blocks until the execution ended (true) or `timeout` passed (false).
  bool WaitDone(std::chrono::milliseconds timeout) const;
  // After WaitDone: OK with the output, or why the engine failed.
  absl::Status status() const;
  const consensus::ConsensusOutput& output() const { return output_; }
  uint64_t prompt_tokens() const { return prompt_tokens_; }

  // Runner side.
  void Append(engine::StreamEvent event);
  void Finish(absl::Status status, consensus::ConsensusOutput output, uint64_t prompt_tokens);
  void set_handle(std::shared_ptr<engine::RequestHandle> handle);
  void Cancel();

 private:
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::vector<engine::StreamEvent> events_;
  bool done_ = false;
  absl::Status status_;
  consensus::ConsensusOutput output_;  // written once, before done_
  uint64_t prompt_tokens_ = 0;
  std::shared_ptr<engine::RequestHandle> handle_;
};

class Executions {
 public:
  explicit Executions(size_t capacity) : capacity_(capacity) {}
  ~Executions();

  // The execution of `request_id`, started on `engine` when there is none (or the previous one
  // failed). `*started` says whether this call started it. The engine's Submit errors are
  // returned as they are (RESOURCE_EXHAUSTED when its queue is full).
  absl::StatusOr<std::shared_ptr<Execution>> GetOrStart(const crypto::Hash256& request_id,
                                                        const consensus::ConsensusRequest& request,
                                                        engine::Engine& engine, bool* started);
  std::shared_ptr<Execution> Find(const crypto::Hash256& request_id) const;
  // Cancels running executions, joins the reader threads; later GetOrStart calls fail.
  void Shutdown();

 private:
  void Evict();  // drops the oldest finished executions beyond capacity_ (mu_ held)

  const size_t capacity_;
  mutable std::mutex mu_;
  bool shut_down_ = false;
  std::map<crypto::Hash256, std::shared_ptr<Execution>> by_id_;
  std::deque<crypto::Hash256> order_;  // insertion order, for eviction
  // Reader threads are detached (a long-running node must not keep finished threads around);
  // Shutdown waits until none is left.
  int live_readers_ = 0;
  std::condition_variable readers_done_;
};

}  // namespace atoma::peer
