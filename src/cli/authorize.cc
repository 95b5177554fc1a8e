// `atoma-cli authorize`: the client authorization of a verified request sent over the node's
// OpenAI-compatible HTTP API (docs/http.md). It reads the OpenAI body the client is about to send,
// with the HTTP server's own parser (src/http/openai_body.h), tokenizes its prompt on the node
// (Inference.Tokenize: the ids the HTTP server computes for the same text or messages), builds the
// canonical request with api::ConsensusRequestFromProto (the server's converter, so the request id
// is the one the node computes), signs that id with the client key for the ledger's domain, and
// prints the body fields atoma_security and atoma_client (and the request id), or the whole body
// with them (--merge).
//
// Cross-validation (--security cross_validation:P:K): it also draws the client's secret 32-byte
// salt, puts its hash in atoma_client.salt_hash (part of the signed request) and prints the salt
// as "salt" (with --merge: writes it to --salt-out, mode 0600, since the merged body goes to the
// node and the salt must not). The client keeps it secret until the stream's atoma_provisional
// chunk, then POSTs it to /v1/atoma/reveal_salt (docs/http.md).
//
// The body must set max_tokens (it bounds the fee the client signs). Sampling parameters the body
// leaves out take the OpenAI defaults the server applies (temperature 1).
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "atoma/common/uint256.h"
#include "atoma/consensus/attestation.h"
#include "atoma/consensus/request.h"
#include "atoma/consensus/xv.h"
#include "atoma/crypto/keys.h"
#include "atoma/crypto/sha256.h"
#include "atoma/ledger/ledger.h"
#include "atoma/v1/inference.grpc.pb.h"
#include "commands.h"
#include "consensus_fields.h"
#include "ledger_open.h"
#include "nlohmann/json.hpp"
#include "node_rpc.h"
#include "openai_body.h"

namespace atoma::cli {
namespace {

using nlohmann::json;

struct AuthorizeArgs {
  std::string addr = "127.0.0.1:50051";
  std::string body_file;  // "-" = stdin
  std::string security = "sampling:3";
  std::string client_key;
  LedgerFlags ledger;
  std::string max_fee;  // decimal; empty = the worst case
  std::optional<uint64_t> nonce;
  bool merge = false;
  std::string salt_out;                 // cross_validation with --merge: where the salt goes
  std::optional<std::string> salt_hex;  // test seam: a fixed salt
  std::optional<uint64_t> epoch;        // test seam: sign for another epoch
};

json ReadBodyOrFail(const std::string& path) {
  std::string text;
  if (path == "-") {
    text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  } else {
    std::ifstream in(path, std::ios::binary);
    if (!in) Fail(absl::StrCat("cannot read ", path));
    text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  json body = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded() || !body.is_object()) {
    Fail(absl::StrCat(path == "-" ? "stdin" : path, ": not a JSON object"));
  }
  return body;
}

// The body as the server reads it, with `client` as its atoma_client.
http::OpenAiRequest ParseOrFail(json body, const std::string& security, const json& client) {
  body["atoma_security"] = security;
  body["atoma_client"] = client;
  http::OpenAiRequest request;
  const bool chat = body.contains("messages");
  if (std::optional<http::BodyError> e = http::ParseOpenAiBody(body, chat, &request)) {
    Fail(absl::StrCat("body: ", e->message));
  }
  return request;
}

// Writes the salt's "0x" hex and a newline to a new file only its owner can read.
void WriteSaltOrFail(const std::string& path, const consensus::XvSalt& salt) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) Fail(absl::StrCat("--salt-out ", path, ": cannot create (errno ", errno, ")"));
  const std::string text = "0x" + crypto::ToHex(salt) + "\n";
  const bool ok = ::fchmod(fd, 0600) == 0 &&
                  ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(fd);
  if (!ok) Fail(absl::StrCat("--salt-out ", path, ": cannot write"));
}

void RunAuthorize(const AuthorizeArgs& args) {
  // A body parses with security none too, but there is nothing to sign then.
  if (args.security == "none") Fail("--security must be sampling:N or cross_validation:P:K");
  if (absl::Status s = RequireLedger(args.ledger, "authorize").status(); !s.ok()) Fail(s);
  const json body = ReadBodyOrFail(args.body_file);
  const crypto::PrivateKey key = OrFail(crypto::ReadKeyFile(args.client_key));
  auto ledger = OrFail(OpenLedger(args.ledger));
  const ledger::Params params = OrFail(ledger->GetParams());
  const uint64_t epoch = args.epoch ? *args.epoch : OrFail(ledger->CurrentEpoch()).number;
  const uint64_t nonce = args.nonce ? *args.nonce : RandomNonce();
  json client = {{"address", crypto::AddressToString(key.address())},
                 {"signature", "0x" + std::string(130, '0')},  // not part of the request id
                 {"nonce", std::to_string(nonce)},
                 {"max_fee", args.max_fee.empty() ? std::string("0") : args.max_fee},
                 {"epoch", epoch}};
  const bool xv = args.security.starts_with("cross_validation");
  if (!xv && (args.salt_hex || !args.salt_out.empty())) {
    Fail("--salt-out and --salt-for-test need --security cross_validation:P:K");
  }
  if (xv && args.merge && args.salt_out.empty()) {
    Fail(
        "--merge with cross_validation needs --salt-out FILE: the merged body goes to the node, "
        "the salt must stay with the client until the provisional result");
  }
  consensus::XvSalt salt{};
  if (xv) {
    if (args.salt_hex) {
      const crypto::Hash256 fixed = ParseHash32OrFail(*args.salt_hex, "--salt-for-test");
      std::copy(fixed.begin(), fixed.end(), salt.begin());
    } else {
      salt = RandomSaltOrFail();
    }
    client["salt_hash"] = "0x" + crypto::ToHex(consensus::XvSaltHash(salt));
  }
  http::OpenAiRequest request = ParseOrFail(body, args.security, client);
  if (!request.proto.has_max_tokens()) {
    Fail("body: max_tokens is required for a verified request (it bounds the fee)");
  }

  // The model's digest and the prompt's ids, from the node the request goes to.
  auto stub = v1::Inference::NewStub(Connect(args.addr));
  const crypto::Hash256 digest =
      ParseHash32OrFail(FindModelOrFail(*stub, request.proto.model(), "authorize").digest_hex(),
                        "the node's model digest");
  std::vector<int32_t> ids(request.proto.token_ids().ids().begin(),
                           request.proto.token_ids().ids().end());
  if (request.proto.prompt_case() != v1::GenerateRequest::kTokenIds) {
    v1::TokenizeRequest tokenize;
    tokenize.set_model(request.proto.model());
    if (request.proto.has_chat()) {
      *tokenize.mutable_chat() = request.proto.chat();
    } else {
      tokenize.set_text(request.proto.text());
    }
    v1::TokenizeResponse tokens;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    const grpc::Status s = stub->Tokenize(&context, tokenize, &tokens);
    if (!s.ok()) FailCall("authorize", s);
    ids.assign(tokens.ids().begin(), tokens.ids().end());
  }

  if (args.max_fee.empty()) {
    // The worst case the node checks before accepting: every prompt token plus max_tokens.
    const Uint256 worst = OrFail(CheckedMul(
        params.fee_per_token, ids.size() + static_cast<uint64_t>(request.proto.max_tokens())));
    client["max_fee"] = worst.ToDecimal();
    request = ParseOrFail(body, args.security, client);
  }
  request.proto.mutable_token_ids()->mutable_ids()->Assign(ids.begin(), ids.end());
  const api::ParsedConsensusRequest parsed =
      OrFail(api::ConsensusRequestFromProto(request.proto, digest));
  const crypto::Signature signature =
      key.Sign(consensus::ClientRequestDigest(params.domain, parsed.request_id));
  client["signature"] = "0x" + crypto::ToHex(signature);

  json out;
  if (args.merge) {
    out = body;
    out["atoma_security"] = args.security;
    out["atoma_client"] = client;
    if (xv) WriteSaltOrFail(args.salt_out, salt);
  } else {
    out = {{"atoma_security", args.security},
           {"atoma_client", client},
           {"request_id", "0x" + crypto::ToHex(parsed.request_id)},
           {"prompt_tokens", ids.size()}};
    if (xv) {
      out["salt"] = "0x" + crypto::ToHex(salt);
      if (!args.salt_out.empty()) WriteSaltOrFail(args.salt_out, salt);
    }
  }
  std::printf("%s\n", out.dump().c_str());
}

}  // namespace

void AddAuthorizeCommand(CLI::App& app) {
  auto args = std::make_shared<AuthorizeArgs>();
  CLI::App* cmd = app.add_subcommand(
      "authorize",
      "Sign a verified request for the OpenAI-compatible HTTP API: reads the JSON body you will "
      "POST to /v1/chat/completions (a body with `messages`) or /v1/completions, and prints the "
      "fields to add to it, {\"atoma_security\", \"atoma_client\"} plus the request id, or the "
      "whole body with them (--merge). The body must set max_tokens; the prompt is tokenized on "
      "the node at --addr (gRPC), the epoch and signing domain come from the ledger. With "
      "cross_validation it also draws the secret salt (printed as \"salt\", or written to "
      "--salt-out): keep it until the stream's atoma_provisional chunk, then POST it to "
      "/v1/atoma/reveal_salt.");
  cmd->add_option("body", args->body_file, "the request body, a JSON file ('-' = stdin)")
      ->required();
  cmd->add_option("--addr", args->addr, "the node's gRPC address host:port (tokenizes the prompt)")
      ->capture_default_str();
  cmd->add_option("--security", args->security,
                  "sampling:N: a committee of N nodes executes and certifies the output; "
                  "cross_validation:P:K: one executor, then with probability P K validators "
                  "re-execute (streaming only)")
      ->capture_default_str();
  cmd->add_option("--client-key", args->client_key,
                  "client key file (atoma-cli keygen): signs the request and pays from its escrow")
      ->required();
  AddLedgerFlags(cmd, &args->ledger, "--ledger-db,--db", /*signs=*/false,
                 "Ledger (required): the signing domain and current epoch");
  cmd->add_option("--max-fee", args->max_fee,
                  "most the client pays, decimal base units (default: fee_per_token x (prompt "
                  "tokens + max_tokens), the worst case)");
  cmd->add_option("--nonce", args->nonce, "client nonce (default: random 64-bit)");
  cmd->add_flag("--merge", args->merge, "print the whole body with the two fields added");
  cmd->add_option("--salt-out", args->salt_out,
                  "cross_validation: also write the secret salt to this file (mode 0600); "
                  "required with --merge");
  cmd->add_option("--salt-for-test", args->salt_hex)->group("");  // hidden: a fixed salt
  cmd->add_option("--epoch-for-test", args->epoch)->group("");    // hidden: a stale epoch
  cmd->callback([args] { RunAuthorize(*args); });
}

}  // namespace atoma::cli
