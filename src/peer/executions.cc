#include "executions.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace atoma::peer {

engine::GenerateRequest ToEngineRequest(const consensus::ConsensusRequest& request,
                                        const crypto::Hash256& request_id) {
  engine::GenerateRequest out;
  out.request_key = request_id;
  out.prompt_ids.assign(request.prompt_token_ids.begin(), request.prompt_token_ids.end());
  out.sampling.temperature = static_cast<double>(request.temperature_micro) / 1e6;
  out.sampling.top_p = static_cast<double>(request.top_p_micro) / 1e6;
  out.sampling.top_k = static_cast<int>(std::min<uint64_t>(request.top_k, 1u << 30));
  out.sampling.seed = request.seed;
  out.max_tokens = static_cast<int>(std::min<uint64_t>(request.max_tokens, 1u << 30));
  out.stop_strings = request.stop_strings;
  out.stop_token_ids.assign(request.stop_token_ids.begin(), request.stop_token_ids.end());
  out.ignore_eos = request.ignore_eos;
  return out;
}

Execution::Wait Execution::Next(size_t index, engine::StreamEvent* event,
                                std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, timeout, [&] { return index < events_.size() || done_; });
  if (index < events_.size()) {
    *event = events_[index];
    return Wait::kEvent;
  }
  return done_ ? Wait::kDone : Wait::kTimeout;
}

bool Execution::WaitDone(std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return done_; });
}

absl::Status Execution::status() const {
  std::lock_guard lock(mu_);
  return status_;
}

void Execution::Append(engine::StreamEvent event) {
  {
    std::lock_guard lock(mu_);
    events_.push_back(std::move(event));
  }
  cv_.notify_all();
}

void Execution::Finish(absl::Status status, consensus::ConsensusOutput output,
                       uint64_t prompt_tokens) {
  {
    std::lock_guard lock(mu_);
    status_ = std::move(status);
    output_ = std::move(output);
    prompt_tokens_ = prompt_tokens;
    done_ = true;
    handle_.reset();
  }
  cv_.notify_all();
}

void Execution::set_handle(std::shared_ptr<engine::RequestHandle> handle) {
  std::lock_guard lock(mu_);
  handle_ = std::move(handle);
}

void Execution::Cancel() {
  std::shared_ptr<engine::RequestHandle> handle;
  {
    std::lock_guard lock(mu_);
    handle = handle_;
  }
  if (handle) handle->Cancel();
}

namespace {

// Reads the engine's events into `execution` until the final one.
void ReadEvents(std::shared_ptr<engine::RequestHandle> handle,
                std::shared_ptr<Execution> execution) {
  engine::StreamEvent event;
  while (true) {
    if (!handle->Next(&event, std::chrono::milliseconds(200))) continue;
    if (!event.final) {
      event.logits.clear();
      execution->Append(std::move(event));
      continue;
    }
    consensus::ConsensusOutput output;
    output.token_ids.assign(event.output_ids.begin(), event.output_ids.end());
    switch (event.finish_reason) {
      case engine::FinishReason::kStop:
        output.finish_reason = consensus::FinishReason::kStop;
        execution->Finish(absl::OkStatus(), std::move(output), event.prompt_tokens);
        return;
      case engine::FinishReason::kLength:
        output.finish_reason = consensus::FinishReason::kLength;
        execution->Finish(absl::OkStatus(), std::move(output), event.prompt_tokens);
        return;
      case engine::FinishReason::kCancelled:
        execution->Finish(absl::CancelledError("the execution was cancelled"), {}, 0);
        return;
      default:
        execution->Finish(
            event.status.ok() ? absl::InternalError("the engine failed") : event.status, {}, 0);
        return;
    }
  }
}

}  // namespace

Executions::~Executions() { Shutdown(); }

absl::StatusOr<std::shared_ptr<Execution>> Executions::GetOrStart(
    const crypto::Hash256& request_id, const consensus::ConsensusRequest& request,
    engine::Engine& engine, bool* started) {
  *started = false;
  std::lock_guard lock(mu_);
  if (shut_down_) return absl::UnavailableError("the node is shutting down");
  auto it = by_id_.find(request_id);
  if (it != by_id_.end()) {
    // A failed execution (cancelled, engine error) is retried; a running or good one is shared.
    if (!it->second->WaitDone(std::chrono::milliseconds(0)) || it->second->status().ok()) {
      return it->second;
    }
    by_id_.erase(it);
  }
  auto handle = engine.Submit(ToEngineRequest(request, request_id));
  if (!handle.ok()) return handle.status();
  auto execution = std::make_shared<Execution>();
  execution->set_handle(*handle);
  by_id_[request_id] = execution;
  order_.push_back(request_id);
  ++live_readers_;
  std::thread([this, handle = *std::move(handle), execution]() mutable {
    ReadEvents(std::move(handle), std::move(execution));
    std::lock_guard done_lock(mu_);
    if (--live_readers_ == 0) readers_done_.notify_all();
  }).detach();
  *started = true;
  Evict();
  return execution;
}

std::shared_ptr<Execution> Executions::Find(const crypto::Hash256& request_id) const {
  std::lock_guard lock(mu_);
  auto it = by_id_.find(request_id);
  return it == by_id_.end() ? nullptr : it->second;
}

void Executions::Evict() {
  size_t scanned = 0;
  while (by_id_.size() > capacity_ && scanned < order_.size()) {
    const crypto::Hash256 id = order_.front();
    order_.pop_front();
    auto it = by_id_.find(id);
    if (it == by_id_.end()) continue;
    if (!it->second->WaitDone(std::chrono::milliseconds(0))) {
      order_.push_back(id);  // still running: keep
      ++scanned;
      continue;
    }
    by_id_.erase(it);
  }
}

void Executions::Shutdown() {
  std::unique_lock lock(mu_);
  shut_down_ = true;
  for (auto& [id, e] : by_id_) e->Cancel();
  // The engine answers a cancel within one decode step; its own Shutdown ends the rest.
  readers_done_.wait(lock, [&] { return live_readers_ == 0; });
}

}  // namespace atoma::peer
