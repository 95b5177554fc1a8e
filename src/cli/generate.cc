// `atoma-cli generate` and `atoma-cli models`: gRPC clients of atoma.v1.Inference.
//
// Verified requests (`--security sampling:N`, DESIGN §4.3): the client tokenizes on the node,
// builds the canonical request (consensus::ConsensusRequest) with the ledger's current epoch,
// signs its id with the client key, sends it with api::ToGenerateRequest (the mapping the server
// uses too, so both compute the same id), streams the text, and checks the certificate of the
// final message against the ledger (VerifyWithLedger) with the output it received. It trusts the
// node for nothing the certificate does not prove.
//
// Cross-validation (`--security cross_validation:P:K`, DESIGN §4.6, docs/protocol.md): the client
// also draws a secret 32-byte salt and signs a request carrying only XvSaltHash(salt). When the
// stream delivers the executor's `provisional` result, the client checks that the attestation
// commits to that output and is signed by a node the epoch's draws allow as executor, and only
// then reveals the salt (Inference.RevealSalt on the same node, while the stream stays open): the
// coin is over the executor's signed claim, so the salt must not leave the client before that
// claim is fixed, and never for a claim it could not check. The final 0x02 certificate is checked
// against the ledger with VerifyXvWithLedger (VerifyXvCertificate, as `atoma-cli verify` does).
#include <grpcpp/grpcpp.h>
#include <sys/random.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "atoma/common/status.h"
#include "atoma/common/uint256.h"
#include "atoma/consensus/attestation.h"
#include "atoma/consensus/committee.h"
#include "atoma/consensus/encoding.h"
#include "atoma/consensus/request.h"
#include "atoma/consensus/xv.h"
#include "atoma/crypto/keys.h"
#include "atoma/crypto/sha256.h"
#include "atoma/ledger/ledger.h"
#include "atoma/v1/inference.grpc.pb.h"
#include "commands.h"
#include "consensus_fields.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "ledger_open.h"
#include "nlohmann/json.hpp"
#include "node_rpc.h"
#include "verify.h"

namespace atoma::cli {

namespace {

const char* FinishName(v1::FinishReason reason) {
  switch (reason) {
    case v1::FINISH_REASON_STOP:
      return "stop";
    case v1::FINISH_REASON_LENGTH:
      return "length";
    case v1::FINISH_REASON_CANCELLED:
      return "cancelled";
    default:
      return "unspecified";
  }
}

const char* CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::UNKNOWN:
      return "UNKNOWN";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    default:
      return "ERROR";
  }
}

std::string ToJson(const google::protobuf::Message& message) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  if (!google::protobuf::util::MessageToJsonString(message, &out, options).ok()) return "{}";
  return out;
}

struct GenerateArgs {
  std::string addr = "127.0.0.1:50051";
  std::string model;
  std::string prompt;
  bool chat = false;
  std::string system;
  int max_tokens = 0;  // 0 = node default
  double temperature = 0.0;
  double top_p = 1.0;
  int top_k = 0;
  uint64_t seed = 0;
  int top_logprobs = 0;
  std::vector<std::string> stop;
  std::vector<int> stop_token_ids;
  bool ignore_eos = false;
  bool json = false;
  double timeout_s = 600;
  // Verified requests.
  std::string security = "none";  // none | sampling:N | cross_validation:P:K
  std::string client_key;
  LedgerFlags ledger;   // --ledger-db FILE or --rpc-url URL --contract ADDRESS
  std::string max_fee;  // decimal; empty = the worst case
  std::optional<uint64_t> nonce;
  std::string save_cert;
  bool dry_run = false;
  // Hidden test seams: a request the node must refuse (PERMISSION_DENIED, FAILED_PRECONDITION).
  bool corrupt_signature = false;
  std::optional<uint64_t> epoch;
  // Cross-validation seams: never reveal the salt (the round ends "unrevealed" after the node's
  // salt timeout); a fixed salt, so a --dry-run plans the same request id and draws as the run.
  bool no_reveal = false;
  std::optional<std::string> salt_hex;
};

// The prompt of `args` as chat messages or text, set on `request` (a GenerateRequest or a
// TokenizeRequest: both have the same `text` and `chat` fields).
template <typename Request>
void SetPrompt(const GenerateArgs& args, Request* request) {
  if (args.chat || !args.system.empty()) {
    v1::ChatPrompt* chat = request->mutable_chat();
    if (!args.system.empty()) {
      v1::ChatMessage* m = chat->add_messages();
      m->set_role("system");
      m->set_content(args.system);
    }
    v1::ChatMessage* m = chat->add_messages();
    m->set_role("user");
    m->set_content(args.prompt);
  } else {
    request->set_text(args.prompt);
  }
}

void RunGenerate(const GenerateArgs& args) {
  v1::GenerateRequest request;
  request.set_model(args.model);
  SetPrompt(args, &request);
  if (args.max_tokens != 0) request.set_max_tokens(args.max_tokens);
  v1::SamplingParams* sampling = request.mutable_sampling();
  sampling->set_temperature(args.temperature);
  sampling->set_top_k(args.top_k);
  if (args.top_p != 1.0) sampling->set_top_p(args.top_p);
  sampling->set_seed(args.seed);
  sampling->set_top_logprobs(args.top_logprobs);
  for (const std::string& s : args.stop) request.add_stop(s);
  for (int id : args.stop_token_ids) request.add_stop_token_ids(id);
  request.set_ignore_eos(args.ignore_eos);

  auto stub = v1::Inference::NewStub(Connect(args.addr));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::milliseconds(static_cast<int64_t>(args.timeout_s * 1000)));
  auto reader = stub->Generate(&context, request);
  v1::GenerateResponse message;
  std::string text;
  v1::GenerateResult result;
  bool have_result = false;
  while (reader->Read(&message)) {
    if (message.has_chunk()) {
      text += message.chunk().text();
      if (!args.json) {
        std::fwrite(message.chunk().text().data(), 1, message.chunk().text().size(), stdout);
        std::fflush(stdout);
      }
    } else if (message.has_final()) {
      result = message.final();
      have_result = true;
    }
  }
  const grpc::Status status = reader->Finish();
  if (!args.json && !text.empty() && text.back() != '\n') std::fputc('\n', stdout);
  std::fflush(stdout);
  if (!status.ok()) FailCall("generate", status);
  if (!have_result) {
    FailCall("generate", grpc::Status(grpc::StatusCode::INTERNAL, "stream ended without a result"));
  }
  if (args.json) {
    // One JSON object: the completion text and the final message as protobuf JSON.
    std::string final_json = ToJson(result);
    std::string text_json;
    google::protobuf::util::JsonPrintOptions options;
    google::protobuf::Value value;
    value.set_string_value(text);
    if (!google::protobuf::util::MessageToJsonString(value, &text_json, options).ok()) {
      text_json = "\"\"";
    }
    std::printf("{\"text\": %s, \"result\": %s}\n", text_json.c_str(), final_json.c_str());
    std::fflush(stdout);
  }
  const v1::Usage& u = result.usage();
  std::fprintf(stderr,
               "[%s] prompt tokens: %d, completion tokens: %d, time to first token: %.1f ms, "
               "%.1f tokens/s, total %.1f ms\n",
               FinishName(result.finish_reason()), u.prompt_tokens(), u.completion_tokens(),
               u.time_to_first_token_ms(), u.tokens_per_second(), u.total_time_ms());
}

// ---------------------------------------------------------------------------------------------
// Verified requests

using nlohmann::json;

std::string Hex0x(std::span<const uint8_t> bytes) { return "0x" + crypto::ToHex(bytes); }

// A whole string as an unsigned decimal.
bool ParseU64(std::string_view text, uint64_t* out) {
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, *out);
  return !text.empty() && ec == std::errc() && ptr == end;
}

// "none" → mode none; "sampling:N" → n; "cross_validation:P:K" → p_micro and k (salt_hash is
// filled in by the caller, which draws the salt).
consensus::Security ParseSecurityOrFail(const std::string& text) {
  consensus::Security s;
  if (text == "none") return s;
  const std::string sampling = "sampling:";
  const std::string xv = "cross_validation:";
  if (text.starts_with(sampling)) {
    uint64_t n = 0;
    if (ParseU64(std::string_view(text).substr(sampling.size()), &n) && n >= 1 &&
        n <= consensus::kMaxCommitteeSize) {
      s.mode = consensus::SecurityMode::kSampling;
      s.n = n;
      return s;
    }
  } else if (text.starts_with(xv)) {
    const std::string_view rest = std::string_view(text).substr(xv.size());
    const size_t colon = rest.find(':');
    double p = -1;
    uint64_t k = 0;
    if (colon != std::string_view::npos) {
      const std::string_view p_text = rest.substr(0, colon);
      const auto [ptr, ec] = std::from_chars(p_text.data(), p_text.data() + p_text.size(), p);
      if (!p_text.empty() && ec == std::errc() && ptr == p_text.data() + p_text.size() &&
          p >= 0.0 && p <= 1.0 && ParseU64(rest.substr(colon + 1), &k) &&
          k <= consensus::kMaxCommitteeSize) {
        s.mode = consensus::SecurityMode::kCrossValidation;
        // The same rounding the node applies to the proto's double (consensus_fields.h).
        s.p_micro = OrFail(api::ToMicro(p, "--security cross_validation probability"));
        s.k = k;
        return s;
      }
    }
    Fail(
        absl::StrCat("--security cross_validation:P:K needs P a probability in [0, 1] and K "
                     "validators in 0..",
                     consensus::kMaxCommitteeSize, ", got '", text, "'"));
  }
  Fail(absl::StrCat("--security must be none, sampling:N with N in 1..",
                    consensus::kMaxCommitteeSize, " or cross_validation:P:K, got '", text, "'"));
}

std::vector<uint32_t> TokenizeOrFail(v1::Inference::Stub& stub, const GenerateArgs& args) {
  v1::TokenizeRequest request;
  request.set_model(args.model);
  SetPrompt(args, &request);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  v1::TokenizeResponse response;
  const grpc::Status status = stub.Tokenize(&context, request, &response);
  if (!status.ok()) FailCall("generate", status);
  std::vector<uint32_t> ids;
  for (int32_t id : response.ids()) {
    if (id < 0) Fail("the node's Tokenize returned a negative token id");
    ids.push_back(static_cast<uint32_t>(id));
  }
  if (ids.empty()) Fail("the prompt tokenizes to nothing");
  return ids;
}

// The echelon the entry node draws the committee from: H("atoma/echelon", model digest,
// fingerprint) (DESIGN §4.2) when the node reports its fingerprint and that echelon has frozen
// stake in `epoch`; otherwise the one echelon with frozen stake whose registered nodes serve the
// model (several → the client cannot tell which one the node uses, an error).
crypto::Hash256 EchelonOrFail(ledger::LedgerClient& ledger, const v1::ModelInfo& model,
                              const crypto::Hash256& digest, uint64_t epoch) {
  const std::vector<crypto::Hash256> frozen = OrFail(ledger.SnapshotEchelons(epoch));
  if (!model.fingerprint_hex().empty()) {
    const crypto::Hash256 fingerprint =
        ParseHash32OrFail(model.fingerprint_hex(), "the node's model fingerprint");
    consensus::Encoder e;
    e.Hash(digest).Hash(fingerprint);
    const crypto::Hash256 id = consensus::TaggedHash("atoma/echelon", e);
    if (std::find(frozen.begin(), frozen.end(), id) != frozen.end()) return id;
  }
  std::vector<crypto::Hash256> serving;
  for (const ledger::Address& a : OrFail(ledger.ListNodes())) {
    for (const ledger::EchelonRef& r : OrFail(ledger.GetNode(a)).echelons) {
      if (r.model_digest == digest &&
          std::find(frozen.begin(), frozen.end(), r.echelon_id) != frozen.end() &&
          std::find(serving.begin(), serving.end(), r.echelon_id) == serving.end()) {
        serving.push_back(r.echelon_id);
      }
    }
  }
  if (serving.size() == 1) return serving[0];
  Fail(serving.empty() ? absl::StrCat("no echelon of model ", model.id(), " (digest 0x",
                                      model.digest_hex(), ") has frozen stake in epoch ", epoch,
                                      ": register and stake nodes, then advance the epoch")
                       : absl::StrCat(serving.size(), " echelons of model ", model.id(),
                                      " have frozen stake in epoch ", epoch,
                                      " and the node reports no fingerprint that picks one"));
}

// What a verifier knows from the ledger about a certificate for `epoch` whose attestations name
// `echelon`, built the way VerifyWithLedger builds it: the ledger's domain, that epoch's seed and
// the echelon's frozen snapshot. The error says why not (unknown epoch or echelon).
absl::StatusOr<consensus::CertificateContext> LedgerContext(ledger::LedgerClient& ledger,
                                                            const consensus::Domain& domain,
                                                            uint64_t epoch,
                                                            const crypto::Hash256& echelon) {
  consensus::CertificateContext ctx;
  ctx.domain = domain;
  ctx.epoch = epoch;
  ctx.echelon_id = echelon;
  ASSIGN_OR_RETURN(const ledger::Epoch e, ledger.GetEpoch(epoch));
  ctx.epoch_seed = e.seed;
  ASSIGN_OR_RETURN(const std::vector<ledger::Candidate> snapshot,
                   ledger.EchelonSnapshot(epoch, echelon));
  for (const ledger::Candidate& c : snapshot) ctx.registry.push_back({c.address, c.stake});
  return ctx;
}

json MembersJson(ledger::LedgerClient& ledger, const std::vector<crypto::Address>& members) {
  json arr = json::array();
  for (const crypto::Address& a : members) {
    auto node = ledger.GetNode(a);
    arr.push_back({{"address", crypto::AddressToString(a)},
                   {"endpoint", node.ok() ? node->endpoint : std::string()}});
  }
  return arr;
}

std::string MembersText(ledger::LedgerClient& ledger, const std::vector<crypto::Address>& members) {
  std::string out;
  for (size_t i = 0; i < members.size(); ++i) {
    auto node = ledger.GetNode(members[i]);
    absl::StrAppend(&out, "  ", i, " ", crypto::AddressToString(members[i]), " ",
                    node.ok() ? node->endpoint : std::string("(unregistered)"), "\n");
  }
  return out;
}

void WriteFileOrFail(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) Fail(absl::StrCat("cannot write ", path));
}

// The output of a GenerateResult or ProvisionalResult as the certificate commits to it; "" when
// it has one, else why not.
std::string ToConsensusOutput(const google::protobuf::RepeatedField<int32_t>& ids,
                              v1::FinishReason reason, consensus::ConsensusOutput* output) {
  output->token_ids.clear();
  for (int32_t id : ids) {
    if (id < 0) return "the node returned a negative output token id";
    output->token_ids.push_back(static_cast<uint32_t>(id));
  }
  if (reason == v1::FINISH_REASON_STOP) {
    output->finish_reason = consensus::FinishReason::kStop;
  } else if (reason == v1::FINISH_REASON_LENGTH) {
    output->finish_reason = consensus::FinishReason::kLength;
  } else {
    return absl::StrCat("the generation ended ", FinishName(reason),
                        ", which no certificate covers");
  }
  return "";
}

bool SameOutput(const consensus::ConsensusOutput& a, const consensus::ConsensusOutput& b) {
  return a.token_ids == b.token_ids && a.finish_reason == b.finish_reason;
}

// The client's check of a cross-validation provisional result, before it reveals the salt (the
// coin is over this attestation, so it must be the executor's real, signed claim about this very
// output): the attestation decodes, is about our request, commits to the streamed output
// (C == Commitment(OutputProofs(request_id, output, [executor])), its own p, counts and Merkle
// root), is signed by the executor for this ledger and epoch (VerifyAttestation), and the executor
// is draw 0 or its backup for the epoch's seed and the echelon's frozen snapshot. Returns "" when
// all hold, else the failure; fills `attestation` and `output`.
std::string CheckProvisional(const v1::ProvisionalResult& p, const consensus::ConsensusRequest& r,
                             const crypto::Hash256& request_id,
                             const crypto::Signature& client_signature,
                             const consensus::Domain& domain, ledger::LedgerClient& ledger,
                             consensus::Attestation* attestation,
                             consensus::ConsensusOutput* output) {
  if (p.request_id() != std::string(request_id.begin(), request_id.end())) {
    return "the provisional result names another request id";
  }
  auto a = consensus::DecodeAttestation(std::span<const uint8_t>(
      reinterpret_cast<const uint8_t*>(p.attestation().data()), p.attestation().size()));
  if (!a.ok()) return absl::StrCat("malformed attestation: ", a.status().message());
  *attestation = *a;
  if (std::string why = ToConsensusOutput(p.output_ids(), p.finish_reason(), output);
      !why.empty()) {
    return why;
  }
  if (a->request_id != request_id) return "the attestation is about another request";
  const crypto::Address executor = a->member;
  const std::vector<crypto::Hash256> proofs =
      consensus::OutputProofs(request_id, *output, std::span<const crypto::Address>(&executor, 1));
  if (a->commitment != consensus::Commitment(proofs)) {
    return "the attested C is not the commitment to the provisional output";
  }
  if (a->proof != proofs[0]) return "the executor's p is not its proof of the provisional output";
  if (a->completion_tokens != output->token_ids.size() ||
      a->prompt_tokens != r.prompt_token_ids.size() ||
      a->merkle_root != consensus::OutputMerkleRoot(output->token_ids)) {
    return "the attested token counts or Merkle root do not match the provisional output";
  }
  if (absl::Status s = consensus::VerifyAttestation(*a, domain, r.epoch); !s.ok()) {
    return absl::StrCat("executor signature: ", s.message());
  }
  // The draw: as a committee of one, the executor's certificate must verify on its own.
  auto ctx = LedgerContext(ledger, domain, r.epoch, a->echelon_id);
  if (!ctx.ok()) return std::string(ctx.status().message());
  consensus::Certificate base;
  base.request = r;
  base.client_signature = client_signature;
  base.committee = {executor};
  base.commitment = a->commitment;
  base.attestations = {*a};
  const consensus::CertificateVerdict v = consensus::VerifyCertificate(base, *output, *ctx);
  if (!v.ok()) return v.reason;
  return "";
}

// --dry-run: the request id and the draws the node will make for it, from the ledger alone.
void PrintPlan(const GenerateArgs& args, ledger::LedgerClient& ledger, const v1::ModelInfo& model,
               const crypto::Hash256& digest, const consensus::ConsensusRequest& r,
               const crypto::Hash256& request_id) {
  const bool xv = r.security.mode == consensus::SecurityMode::kCrossValidation;
  const crypto::Hash256 echelon = EchelonOrFail(ledger, model, digest, r.epoch);
  const ledger::Epoch e = OrFail(ledger.GetEpoch(r.epoch));
  std::vector<consensus::Candidate> candidates;
  for (const ledger::Candidate& c : OrFail(ledger.EchelonSnapshot(r.epoch, echelon))) {
    candidates.push_back({c.address, c.stake});
  }
  const size_t n = consensus::CommitteeSize(r.security);
  const consensus::CommitteeDraws draws = OrFail(consensus::SelectCommittee(
      e.seed, request_id, candidates, n, consensus::BackupCount(n),
      xv ? consensus::XvRefereeDraws(r.security.k) : consensus::RefereeCount(n)));
  // Cross-validation: the "referee" draws are the k validators, then the dispute referees.
  const consensus::XvDraws xv_draws =
      xv ? consensus::SplitXvDraws(draws, r.security.k) : consensus::XvDraws{{}, draws.referees};
  if (args.json) {
    json j = {{"request_id", Hex0x(request_id)},
              {"epoch", r.epoch},
              {"echelon_id", Hex0x(echelon)},
              {"client", crypto::AddressToString(r.client)},
              {"nonce", r.client_nonce},
              {"max_fee", r.max_fee.ToDecimal()},
              {"prompt_tokens", r.prompt_token_ids.size()},
              {"committee", MembersJson(ledger, draws.committee)},
              {"backups", MembersJson(ledger, draws.backups)},
              {"referees", MembersJson(ledger, xv_draws.referees)}};
    if (xv) {
      j["executor"] = MembersJson(ledger, draws.committee)[0];
      j["validators"] = MembersJson(ledger, xv_draws.validators);
      j["probability_micro"] = r.security.p_micro;
      j["salt_hash"] = Hex0x(r.security.salt_hash);
    }
    std::printf("%s\n", j.dump(2).c_str());
  } else if (xv) {
    std::printf(
        "request %s\nepoch %llu, echelon %s\nclient %s, nonce %llu, max fee %s\n"
        "cross-validation: p = %llu/1000000, k = %llu, salt hash %s (a real run draws a new "
        "salt, and with it another request id and other draws)\n"
        "executor:\n%sbackups (%zu):\n%svalidators (%zu):\n%sdispute referees (%zu):\n%s",
        Hex0x(request_id).c_str(), static_cast<unsigned long long>(r.epoch), Hex0x(echelon).c_str(),
        crypto::AddressToString(r.client).c_str(), static_cast<unsigned long long>(r.client_nonce),
        r.max_fee.ToDecimal().c_str(), static_cast<unsigned long long>(r.security.p_micro),
        static_cast<unsigned long long>(r.security.k), Hex0x(r.security.salt_hash).c_str(),
        MembersText(ledger, draws.committee).c_str(), draws.backups.size(),
        MembersText(ledger, draws.backups).c_str(), xv_draws.validators.size(),
        MembersText(ledger, xv_draws.validators).c_str(), xv_draws.referees.size(),
        MembersText(ledger, xv_draws.referees).c_str());
  } else {
    std::printf(
        "request %s\nepoch %llu, echelon %s\nclient %s, nonce %llu, max fee %s\n"
        "committee (%zu):\n%sbackups (%zu):\n%sreferees (%zu):\n%s",
        Hex0x(request_id).c_str(), static_cast<unsigned long long>(r.epoch), Hex0x(echelon).c_str(),
        crypto::AddressToString(r.client).c_str(), static_cast<unsigned long long>(r.client_nonce),
        r.max_fee.ToDecimal().c_str(), n, MembersText(ledger, draws.committee).c_str(),
        draws.backups.size(), MembersText(ledger, draws.backups).c_str(), draws.referees.size(),
        MembersText(ledger, draws.referees).c_str());
  }
}

void RunVerifiedGenerate(const GenerateArgs& args, consensus::Security security) {
  const bool xv = security.mode == consensus::SecurityMode::kCrossValidation;
  if (args.client_key.empty()) Fail("--security " + args.security + " needs --client-key FILE");
  if (absl::Status s = RequireLedger(args.ledger, "--security " + args.security).status();
      !s.ok()) {
    Fail(s);
  }
  if (!xv && (args.no_reveal || args.salt_hex)) {
    Fail("--no-reveal-for-test and --salt-for-test need --security cross_validation:P:K");
  }
  const crypto::PrivateKey key = OrFail(crypto::ReadKeyFile(args.client_key));
  auto ledger = OrFail(OpenLedger(args.ledger));
  const ledger::Params params = OrFail(ledger->GetParams());
  const ledger::Epoch epoch = OrFail(ledger->CurrentEpoch());

  auto stub = v1::Inference::NewStub(Connect(args.addr));
  const v1::ModelInfo model = FindModelOrFail(*stub, args.model, "generate");
  const crypto::Hash256 digest = ParseHash32OrFail(model.digest_hex(), "the node's model digest");

  // Cross-validation: the salt stays with the client until the executor has committed; only its
  // hash goes into the request (and so into the request id, the draws and the signature).
  consensus::XvSalt salt{};
  if (xv) {
    if (args.salt_hex) {
      const crypto::Hash256 fixed = ParseHash32OrFail(*args.salt_hex, "--salt-for-test");
      std::copy(fixed.begin(), fixed.end(), salt.begin());
    } else {
      salt = RandomSaltOrFail();
    }
    security.salt_hash = consensus::XvSaltHash(salt);
  }

  consensus::ConsensusRequest r;
  r.model_digest = digest;
  r.prompt_token_ids = TokenizeOrFail(*stub, args);
  r.temperature_micro = OrFail(api::ToMicro(args.temperature, "--temperature"));
  if (!(args.top_p > 0.0 && args.top_p <= 1.0)) Fail("--top-p must be in (0, 1]");
  r.top_p_micro = OrFail(api::ToMicro(args.top_p, "--top-p"));
  if (args.top_k < 0) Fail("--top-k must be >= 0");
  r.top_k = static_cast<uint64_t>(args.top_k);
  r.ignore_eos = args.ignore_eos;
  // A verified request needs max_tokens: it bounds the work and so the fee the client signs.
  r.max_tokens = args.max_tokens != 0 ? static_cast<uint64_t>(args.max_tokens) : 64;
  r.stop_strings = args.stop;
  for (int id : args.stop_token_ids) {
    if (id < 0) Fail("--stop-token-id must be >= 0");
    r.stop_token_ids.push_back(static_cast<uint32_t>(id));
  }
  r.seed = args.seed;
  r.security = security;
  if (args.max_fee.empty()) {
    // The worst case the node checks before accepting: every prompt token plus max_tokens.
    r.max_fee = OrFail(CheckedMul(params.fee_per_token, r.prompt_token_ids.size() + r.max_tokens));
  } else {
    r.max_fee = OrFail(Uint256::FromDecimal(args.max_fee));
  }
  r.client = key.address();
  r.client_nonce = args.nonce ? *args.nonce : RandomNonce();
  r.epoch = args.epoch ? *args.epoch : epoch.number;
  const crypto::Hash256 request_id = consensus::RequestId(r);
  crypto::Signature signature = key.Sign(consensus::ClientRequestDigest(params.domain, request_id));
  if (args.corrupt_signature) signature[5] ^= 0x01;  // still well-formed, recovers elsewhere

  if (args.dry_run) {
    PrintPlan(args, *ledger, model, digest, r, request_id);
    return;
  }

  v1::GenerateRequest request = api::ToGenerateRequest(r, args.model, signature);
  request.mutable_sampling()->set_top_logprobs(args.top_logprobs);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::milliseconds(static_cast<int64_t>(args.timeout_s * 1000)));
  auto reader = stub->Generate(&context, request);
  v1::GenerateResponse message;
  std::string text;
  v1::GenerateResult result;
  bool have_result = false;
  // Cross-validation: what the client saw and did between the tokens and the final message.
  std::optional<consensus::Attestation> provisional;
  consensus::ConsensusOutput provisional_output;
  bool revealed = false;
  std::optional<bool> node_drawn;  // the node's RevealSalt answer
  bool mid_line = false;           // the console's cursor follows streamed text that ended no line
  auto end_line = [&] {
    if (mid_line) std::fputc('\n', stdout);
    mid_line = false;
    std::fflush(stdout);
  };
  // Gives up on the stream (the node's round goes on without the client) and fails.
  auto abandon = [&](const grpc::Status& status) {
    context.TryCancel();
    while (reader->Read(&message)) {
    }
    reader->Finish();
    end_line();
    FailCall("generate", status);
  };
  while (reader->Read(&message)) {
    if (message.has_chunk()) {
      const std::string& chunk = message.chunk().text();
      text += chunk;
      if (!args.json && !chunk.empty()) {
        std::fwrite(chunk.data(), 1, chunk.size(), stdout);
        std::fflush(stdout);
        mid_line = chunk.back() != '\n';
      }
    } else if (message.has_provisional()) {
      if (!xv || provisional.has_value()) {
        abandon(grpc::Status(grpc::StatusCode::INTERNAL,
                             xv ? "the node sent a second provisional result"
                                : "the node sent a provisional result for a sampling request"));
      }
      consensus::Attestation a;
      const std::string failure = CheckProvisional(message.provisional(), r, request_id, signature,
                                                   params.domain, *ledger, &a, &provisional_output);
      end_line();
      if (!failure.empty()) {
        // The salt stays secret: revealing it for a claim we cannot check would only let the
        // node learn the coin.
        abandon(grpc::Status(
            grpc::StatusCode::DATA_LOSS,
            absl::StrCat("provisional result rejected, salt not revealed: ", failure)));
      }
      provisional = a;
      if (!args.json) {
        std::printf(
            "provisional: executor %s attested C=%s (%zu tokens; output, signature and "
            "draw checked)\n",
            crypto::AddressToString(a.member).c_str(), Hex0x(a.commitment).c_str(),
            provisional_output.token_ids.size());
        std::fflush(stdout);
      }
      if (args.no_reveal) continue;
      // A second call on the same channel while the stream stays open; the round waits for it.
      v1::RevealSaltRequest reveal;
      reveal.set_request_id(request_id.data(), request_id.size());
      reveal.set_salt(salt.data(), salt.size());
      v1::RevealSaltResponse answer;
      grpc::ClientContext reveal_context;
      reveal_context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
      const grpc::Status s = stub->RevealSalt(&reveal_context, reveal, &answer);
      if (!s.ok()) {
        abandon(grpc::Status(s.error_code(), absl::StrCat("RevealSalt: ", s.error_message())));
      }
      revealed = true;
      node_drawn = answer.check_drawn();
      // The client computes the coin itself; the node's answer is only a cross-check (the final
      // certificate is verified whatever it says).
      const uint64_t coin = consensus::XvCoin(salt, a);
      const bool drawn = consensus::XvCheckDrawn(salt, a, r.security.p_micro);
      if (!args.json) {
        const std::string outcome =
            drawn ? absl::StrCat("check drawn, ", r.security.k, " validator(s) re-execute")
                  : std::string("no check drawn");
        std::printf("salt revealed: coin %llu %s p %llu (millionths): %s\n",
                    static_cast<unsigned long long>(coin),
                    drawn ? "<" : ">=", static_cast<unsigned long long>(r.security.p_micro),
                    outcome.c_str());
        std::fflush(stdout);
      }
      if (drawn != *node_drawn) {
        std::fprintf(stderr,
                     "atoma-cli generate: warning: the node says a check was %sdrawn, "
                     "the coin says otherwise\n",
                     *node_drawn ? "" : "not ");
      }
    } else if (message.has_final()) {
      result = message.final();
      have_result = true;
    }
  }
  const grpc::Status status = reader->Finish();
  end_line();
  if (!status.ok()) FailCall("generate", status);
  if (!have_result) {
    FailCall("generate", grpc::Status(grpc::StatusCode::INTERNAL, "stream ended without a result"));
  }
  const v1::Usage& u = result.usage();
  std::fprintf(stderr,
               "[%s] prompt tokens: %d, completion tokens: %d, time to first token: %.1f ms, "
               "%.1f tokens/s, total %.1f ms\n",
               FinishName(result.finish_reason()), u.prompt_tokens(), u.completion_tokens(),
               u.time_to_first_token_ms(), u.tokens_per_second(), u.total_time_ms());

  // The output the certificate must commit to: what the node streamed us.
  consensus::ConsensusOutput output;
  if (std::string why = ToConsensusOutput(result.output_ids(), result.finish_reason(), &output);
      !why.empty()) {
    Fail(absl::StrCat("not verified: ", why));
  }
  if (result.certificate().empty()) {
    Fail("not verified: the node sent no certificate (does it serve verified requests?)");
  }
  const std::span<const uint8_t> cert_bytes(
      reinterpret_cast<const uint8_t*>(result.certificate().data()), result.certificate().size());

  if (!args.save_cert.empty()) {
    WriteFileOrFail(args.save_cert, result.certificate());
    json out_json = {{"token_ids", output.token_ids},
                     {"finish_reason",
                      output.finish_reason == consensus::FinishReason::kStop ? "stop" : "length"}};
    WriteFileOrFail(args.save_cert + ".output", out_json.dump() + "\n");
  }

  // The certificate must be about the request we signed, not merely some valid certificate.
  std::string verdict;
  bool verified = false;
  consensus::Certificate base;  // the sampling certificate, or the xv certificate's base
  std::optional<consensus::XvCertificate> xv_cert;
  if (xv) {
    auto decoded = consensus::DecodeXvCertificate(cert_bytes);
    if (!decoded.ok()) {
      Fail(absl::StrCat("not verified: malformed cross-validation certificate: ",
                        decoded.status().message()));
    }
    xv_cert = *std::move(decoded);
    base = xv_cert->base;
  } else {
    auto decoded = consensus::DecodeCertificate(cert_bytes);
    if (!decoded.ok()) {
      Fail(absl::StrCat("not verified: malformed certificate: ", decoded.status().message()));
    }
    base = *std::move(decoded);
  }
  const crypto::Hash256 cert_request_id = consensus::RequestId(base.request);
  if (cert_request_id != request_id) {
    verdict = absl::StrCat("not verified: the certificate is for request ", Hex0x(cert_request_id),
                           ", not ", Hex0x(request_id));
  } else if (xv && provisional.has_value() && !SameOutput(output, provisional_output)) {
    verdict = "not verified: the final output differs from the provisional one";
  } else if (xv && provisional.has_value() &&
             (base.attestations.size() != 1 || consensus::AttestationDigest(base.attestations[0]) !=
                                                   consensus::AttestationDigest(*provisional))) {
    // The coin was drawn over the provisional attestation; a certificate over another claim is
    // not the one the client checked.
    verdict = "not verified: the certificate's executor attestation is not the provisional one";
  } else {
    auto v = xv ? VerifyXvWithLedger(*ledger, *xv_cert, &output)
                : VerifyWithLedger(*ledger, base, &output);
    if (v.ok()) {
      verdict = *v;
      verified = true;
    } else {
      verdict = std::string(v.status().message());
    }
  }
  while (!verdict.empty() && verdict.back() == '\n') verdict.pop_back();
  // Outcome (d) although this client revealed: the entry node did not pass the salt on (a known
  // limit, docs/protocol.md). The certificate is valid; the check the client asked for never ran.
  std::string warning;
  if (xv_cert && revealed && xv_cert->unrevealed()) {
    warning =
        "the certificate says the salt was never revealed, although this client revealed it: "
        "the entry node did not pass it on, so no check could be drawn";
  }
  if (!warning.empty()) std::fprintf(stderr, "atoma-cli generate: warning: %s\n", warning.c_str());

  if (args.json) {
    std::string result_json = ToJson(result);
    json j = {{"text", text},
              {"request_id", Hex0x(request_id)},
              {"epoch", base.request.epoch},
              {"nonce", r.client_nonce},
              {"committee", MembersJson(*ledger, base.committee)},
              {"commitment", Hex0x(base.commitment)},
              {"verified", verified},
              {"verdict", verdict},
              {"result", json::parse(result_json, nullptr, false)}};
    if (xv) {
      j["provisional"] = provisional.has_value()
                             ? json{{"executor", crypto::AddressToString(provisional->member)},
                                    {"commitment", Hex0x(provisional->commitment)},
                                    {"output_tokens", provisional_output.token_ids.size()}}
                             : json(nullptr);
      j["salt_revealed"] = revealed;
      j["check_drawn"] = node_drawn.has_value() ? json(*node_drawn) : json(nullptr);
      j["coin"] = provisional.has_value() && revealed ? json(consensus::XvCoin(salt, *provisional))
                                                      : json(nullptr);
      j["unrevealed"] = xv_cert->unrevealed();
      std::vector<crypto::Address> validators;
      for (const consensus::Attestation& a : xv_cert->validators) validators.push_back(a.member);
      j["validators"] = MembersJson(*ledger, validators);
      if (!warning.empty()) j["warning"] = warning;
    }
    if (!args.save_cert.empty()) j["certificate_file"] = args.save_cert;
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("certificate: request %s, epoch %llu\ncommittee (%zu):\n%s",
                Hex0x(request_id).c_str(), static_cast<unsigned long long>(base.request.epoch),
                base.committee.size(), MembersText(*ledger, base.committee).c_str());
    if (xv) {
      std::vector<crypto::Address> validators;
      for (const consensus::Attestation& a : xv_cert->validators) validators.push_back(a.member);
      std::printf("salt: %s\nvalidators (%zu):\n%s",
                  xv_cert->unrevealed() ? "never revealed" : "revealed", validators.size(),
                  MembersText(*ledger, validators).c_str());
    }
    std::printf("commitment C %s\n%s\n", Hex0x(base.commitment).c_str(), verdict.c_str());
    if (!args.save_cert.empty()) {
      std::printf(
          "saved %s and %s.output (check with: atoma-cli verify %s %s --output "
          "%s.output)\n",
          args.save_cert.c_str(), args.save_cert.c_str(), LedgerArgs(args.ledger).c_str(),
          args.save_cert.c_str(), args.save_cert.c_str());
    }
  }
  std::fflush(stdout);
  if (!verified) Fail(verdict);
}

void RunModels(const std::string& addr, bool json) {
  auto stub = v1::Inference::NewStub(Connect(addr));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  v1::ListModelsResponse response;
  const grpc::Status status = stub->ListModels(&context, v1::ListModelsRequest(), &response);
  if (!status.ok()) FailCall("models", status);
  if (json) {
    std::printf("%s\n", ToJson(response).c_str());
    return;
  }
  for (const v1::ModelInfo& m : response.models()) {
    std::printf("%s\tcontext %d\tchat %s\tvocab %d\tdigest %s\t%s\n", m.id().c_str(),
                m.context_length(), m.chat_format().empty() ? "-" : m.chat_format().c_str(),
                m.vocab_size(), m.digest_hex().c_str(), m.compute_path().c_str());
  }
}

}  // namespace

// ---- shared with the other commands (commands.h) ----

[[noreturn]] void FailCall(const char* command, const grpc::Status& status) {
  std::fprintf(stderr, "atoma-cli %s: %s: %s\n", command, CodeName(status.error_code()),
               status.error_message().c_str());
  throw CLI::RuntimeError(1);
}

std::shared_ptr<grpc::Channel> Connect(const std::string& addr) {
  return grpc::CreateChannel(addr, grpc::InsecureChannelCredentials());
}

crypto::Hash256 ParseHash32OrFail(const std::string& hex, const std::string& what) {
  auto bytes = crypto::ParseHex(hex);
  if (!bytes.ok() || bytes->size() != 32) {
    Fail(absl::StrCat(what, ": expected 64 hex digits, got '", hex, "'"));
  }
  crypto::Hash256 h;
  std::copy(bytes->begin(), bytes->end(), h.begin());
  return h;
}

v1::ModelInfo FindModelOrFail(v1::Inference::Stub& stub, const std::string& model,
                              const char* command) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  v1::ListModelsResponse response;
  const grpc::Status status = stub.ListModels(&context, v1::ListModelsRequest(), &response);
  if (!status.ok()) FailCall(command, status);
  for (const v1::ModelInfo& m : response.models()) {
    if (m.id() == model) return m;
  }
  FailCall(command, grpc::Status(grpc::StatusCode::NOT_FOUND,
                                 absl::StrCat("the node does not serve model '", model, "'")));
}

uint64_t RandomNonce() {
  std::random_device rd;  // getrandom(): unpredictable, so two clients do not collide
  return (static_cast<uint64_t>(rd()) << 32) ^ rd();
}

// A fresh secret salt from the kernel's CSPRNG (getrandom, the source of /dev/urandom). It must be
// unpredictable: whoever knows it before the executor commits knows the coin.
consensus::XvSalt RandomSaltOrFail() {
  consensus::XvSalt salt{};
  size_t got = 0;
  while (got < salt.size()) {
    const ssize_t n = getrandom(salt.data() + got, salt.size() - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      Fail(absl::StrCat("getrandom failed (errno ", errno, "): cannot draw a salt"));
    }
    got += static_cast<size_t>(n);
  }
  return salt;
}

void AddGenerateCommand(CLI::App& app) {
  auto args = std::make_shared<GenerateArgs>();
  CLI::App* cmd = app.add_subcommand(
      "generate", "Stream a generation from a running node (prints usage to stderr).");
  cmd->add_option("--addr", args->addr, "node gRPC address host:port")->capture_default_str();
  cmd->add_option("--model", args->model, "model id (see `atoma-cli models`)")->required();
  cmd->add_option("prompt", args->prompt, "prompt text")->required();
  cmd->add_flag("--chat", args->chat, "send the prompt as a user chat message");
  cmd->add_option("--system", args->system, "system message (implies --chat)");
  cmd->add_option("--max-tokens", args->max_tokens, "most tokens to generate (default: node's)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--temperature", args->temperature, "0 = greedy")->capture_default_str();
  cmd->add_option("--top-p", args->top_p, "nucleus sampling, in (0, 1]")->capture_default_str();
  cmd->add_option("--top-k", args->top_k, "0 = off")->capture_default_str();
  cmd->add_option("--seed", args->seed, "sampling seed")->capture_default_str();
  cmd->add_option("--top-logprobs", args->top_logprobs, "alternatives per token (0..20)");
  cmd->add_option("--stop", args->stop, "stop string (repeatable)");
  cmd->add_option("--stop-token-id", args->stop_token_ids, "stop token id (repeatable)");
  cmd->add_flag("--ignore-eos", args->ignore_eos, "keep generating past end-of-sequence tokens");
  cmd->add_flag("--json", args->json,
                "print one JSON object (text and result; verified requests add request_id, "
                "committee, commitment, verified and verdict) instead of text");
  cmd->add_option("--timeout", args->timeout_s, "call deadline in seconds")->capture_default_str();
  const std::string verified = "Verified requests (--security sampling:N or cross_validation:P:K)";
  cmd->add_option("--security", args->security,
                  "none | sampling:N (a committee of N nodes executes and certifies the output) | "
                  "cross_validation:P:K (one executor; with probability P in [0, 1], K "
                  "validators re-execute, decided by a coin over a salt the client reveals after "
                  "the executor's provisional result)")
      ->capture_default_str()
      ->group(verified);
  cmd->add_option("--client-key", args->client_key,
                  "client key file (atoma-cli keygen); signs the request and pays from its "
                  "escrow. Required with sampling and cross_validation")
      ->group(verified);
  // The ledger: the client reads the signing domain and current epoch from it and verifies the
  // certificate against it. Required with sampling and cross_validation.
  AddLedgerFlags(cmd, &args->ledger, "--ledger-db,--db", /*signs=*/false,
                 verified + ": the ledger (required)");
  cmd->add_option("--max-fee", args->max_fee,
                  "most the client pays, decimal base units (default: fee_per_token x "
                  "(prompt tokens + max tokens), the worst case). --max-tokens defaults to 64")
      ->group(verified);
  cmd->add_option("--nonce", args->nonce, "client nonce (default: random 64-bit)")->group(verified);
  cmd->add_option("--save-cert", args->save_cert,
                  "write the certificate to FILE and the output to FILE.output, the two files "
                  "`atoma-cli verify LEDGER FILE --output FILE.output` reads")
      ->group(verified);
  cmd->add_flag("--dry-run", args->dry_run,
                "print the request id, epoch, committee, backups and referees as computed from "
                "the ledger, and exit without sending (JSON with --json); cross_validation: "
                "the executor, its backup, the validators and the dispute referees")
      ->group(verified);
  // Test seams, hidden from --help (an empty group hides an option in CLI11).
  cmd->add_flag("--corrupt-signature-for-test", args->corrupt_signature)->group("");
  cmd->add_option("--epoch-for-test", args->epoch)->group("");
  cmd->add_flag("--no-reveal-for-test", args->no_reveal)->group("");
  cmd->add_option("--salt-for-test", args->salt_hex)->group("");
  cmd->callback([args] {
    const consensus::Security security = ParseSecurityOrFail(args->security);
    if (security.mode == consensus::SecurityMode::kNone) {
      if (args->dry_run || !args->client_key.empty() || !args->save_cert.empty()) {
        Fail(
            "--dry-run, --client-key and --save-cert need --security sampling:N or "
            "cross_validation:P:K");
      }
      RunGenerate(*args);
    } else {
      RunVerifiedGenerate(*args, security);
    }
  });

  auto models_addr = std::make_shared<std::string>("127.0.0.1:50051");
  auto models_json = std::make_shared<bool>(false);
  CLI::App* models = app.add_subcommand("models", "List the models a running node serves.");
  models->add_option("--addr", *models_addr, "node gRPC address host:port")->capture_default_str();
  models->add_flag("--json", *models_json, "print JSON");
  models->callback([models_addr, models_json] { RunModels(*models_addr, *models_json); });
}

}  // namespace atoma::cli
