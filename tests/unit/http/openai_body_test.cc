// The OpenAI body parser (src/http/openai_body.h): the verification fields, the extensions, and
// that a verified body names the same canonical request (request id, signature) as the gRPC
// request a client builds with api::ToGenerateRequest for the same input.
#include "openai_body.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "atoma/common/uint256.h"
#include "atoma/consensus/attestation.h"
#include "atoma/consensus/request.h"
#include "atoma/crypto/keys.h"
#include "atoma/crypto/sha256.h"
#include "consensus_fields.h"

namespace atoma::http {
namespace {

using json = nlohmann::json;

crypto::PrivateKey ClientKey() {
  std::string hex(64, '0');
  hex[0] = 'c';
  hex[63] = '7';
  return crypto::PrivateKey::FromHex(hex).value();
}

const consensus::Domain kDomain = {31337, crypto::Address{0x5f, 0xbd, 0xb2, 0x31}};

std::string Hex0x(std::span<const uint8_t> bytes) { return "0x" + crypto::ToHex(bytes); }

json Client(const std::string& address) {
  return json{{"address", address},
              {"signature", "0x" + std::string(130, '1')},
              {"nonce", "18446744073709551615"},
              {"max_fee", "1000"},
              {"epoch", 4}};
}

json VerifiedBody() {
  return json{{"model", "fake"},
              {"prompt", "Hello"},
              {"max_tokens", 8},
              {"atoma_security", "sampling:3"},
              {"atoma_client", Client("0x" + std::string(40, 'a'))}};
}

BodyError ParseError(const json& body, bool chat = false) {
  OpenAiRequest out;
  std::optional<BodyError> e = ParseOpenAiBody(body, chat, &out);
  EXPECT_TRUE(e.has_value()) << body.dump();
  return e.value_or(BodyError{"<parsed>", ""});
}

TEST(OpenAiBody, NoneIsTheDefault) {
  OpenAiRequest out;
  ASSERT_FALSE(ParseOpenAiBody(json{{"model", "m"}, {"prompt", "x"}}, false, &out));
  EXPECT_FALSE(out.verified);
  EXPECT_FALSE(out.proto.has_security());
  EXPECT_FALSE(out.proto.has_authorization());
  OpenAiRequest none;
  ASSERT_FALSE(ParseOpenAiBody(json{{"model", "m"}, {"prompt", "x"}, {"atoma_security", "none"}},
                               false, &none));
  EXPECT_FALSE(none.verified);
}

TEST(OpenAiBody, SamplingWithClient) {
  OpenAiRequest out;
  ASSERT_FALSE(ParseOpenAiBody(VerifiedBody(), false, &out));
  EXPECT_TRUE(out.verified);
  EXPECT_EQ(out.proto.security().sampling().committee_size(), 3u);
  const v1::ClientAuthorization& a = out.proto.authorization();
  EXPECT_EQ(a.client_address(), std::string(20, '\xaa'));
  EXPECT_EQ(a.signature(), std::string(65, '\x11'));
  EXPECT_EQ(a.nonce(), 18446744073709551615ull);       // a decimal string keeps all 64 bits
  EXPECT_EQ(a.max_fee(), std::string("\x03\xe8", 2));  // minimal big-endian
  EXPECT_EQ(a.epoch(), 4u);
  EXPECT_EQ(out.proto.max_tokens(), 8);
  EXPECT_EQ(out.proto.text(), "Hello");
}

TEST(OpenAiBody, ClientNumberForms) {
  json body = VerifiedBody();
  body["atoma_client"]["nonce"] = 12;
  body["atoma_client"]["epoch"] = "9";
  body["atoma_client"]["max_fee"] = "0x10000000000000000";  // 2^64
  OpenAiRequest out;
  ASSERT_FALSE(ParseOpenAiBody(body, false, &out));
  EXPECT_EQ(out.proto.authorization().nonce(), 12u);
  EXPECT_EQ(out.proto.authorization().epoch(), 9u);
  EXPECT_EQ(out.proto.authorization().max_fee(), std::string("\x01\0\0\0\0\0\0\0\0", 9));
  body["atoma_client"]["max_fee"] = 0;
  ASSERT_FALSE(ParseOpenAiBody(body, false, &out));
  EXPECT_EQ(out.proto.authorization().max_fee(), std::string(1, '\0'));  // one byte for zero
}

TEST(OpenAiBody, VerificationFieldErrorsNameTheField) {
  json body = VerifiedBody();
  body["atoma_security"] = "sampling:0";
  EXPECT_EQ(ParseError(body).param, "atoma_security");
  body["atoma_security"] = "sampling:x";
  EXPECT_EQ(ParseError(body).param, "atoma_security");
  body["atoma_security"] = "paranoid";
  EXPECT_EQ(ParseError(body).param, "atoma_security");
  body["atoma_security"] = 3;
  EXPECT_EQ(ParseError(body).param, "atoma_security");
  for (const char* xv : {"cross_validation", "cross_validation:0.5", "cross_validation:1.5:2",
                         "cross_validation:-0.1:2", "cross_validation:x:2",
                         "cross_validation:0.5:-1", "cross_validation:0.5:4294967296"}) {
    body["atoma_security"] = xv;
    EXPECT_EQ(ParseError(body).param, "atoma_security") << xv;
  }

  body = VerifiedBody();
  body.erase("atoma_client");
  EXPECT_EQ(ParseError(body).param, "atoma_client");
  body = VerifiedBody();
  body["atoma_security"] = "none";
  EXPECT_EQ(ParseError(body).param, "atoma_client");  // a client without verification
  body = VerifiedBody();
  body["atoma_client"] = "0xabc";
  EXPECT_EQ(ParseError(body).param, "atoma_client");

  const std::vector<std::pair<std::string, json>> bad = {
      {"address", "0x1234"},
      {"address", nullptr},
      {"signature", "0x" + std::string(128, '1')},
      {"signature", "0x" + std::string(130, 'g')},
      {"nonce", -1},
      {"nonce", "18446744073709551616"},
      {"nonce", 1.5},
      {"epoch", "four"},
      {"max_fee", "-3"},
      {"max_fee", "0x" + std::string(65, 'f')},
      {"max_fee", 1.5},
      {"max_fee", nullptr},
  };
  for (const auto& [key, value] : bad) {
    body = VerifiedBody();
    body["atoma_client"][key] = value;
    EXPECT_EQ(ParseError(body).param, "atoma_client." + key) << value.dump();
  }
  body = VerifiedBody();
  body["atoma_client"]["maxfee"] = "3";  // a typo must not pass silently
  EXPECT_EQ(ParseError(body).param, "atoma_client.maxfee");
}

TEST(OpenAiBody, CrossValidationWithSaltHash) {
  json body = VerifiedBody();
  body["atoma_security"] = "cross_validation:0.25:2";
  body["atoma_client"]["salt_hash"] = "0x" + std::string(64, 'b');
  OpenAiRequest out;
  ASSERT_FALSE(ParseOpenAiBody(body, false, &out));
  EXPECT_TRUE(out.verified);
  EXPECT_TRUE(out.cross_validation);
  const v1::Security::CrossValidation& xv = out.proto.security().cross_validation();
  EXPECT_EQ(xv.probability(), 0.25);
  EXPECT_EQ(xv.validators(), 2u);
  EXPECT_EQ(xv.salt_hash(), std::string(32, '\xbb'));
  EXPECT_EQ(out.proto.authorization().nonce(), 18446744073709551615ull);
  body["atoma_security"] = "cross_validation:1:0";
  ASSERT_FALSE(ParseOpenAiBody(body, false, &out));
  EXPECT_EQ(out.proto.security().cross_validation().probability(), 1.0);

  // The salt hash is required with cross-validation, and only there.
  body["atoma_client"].erase("salt_hash");
  EXPECT_EQ(ParseError(body).param, "atoma_client.salt_hash");
  body["atoma_client"]["salt_hash"] = "0x1234";
  EXPECT_EQ(ParseError(body).param, "atoma_client.salt_hash");
  body = VerifiedBody();
  body["atoma_client"]["salt_hash"] = "0x" + std::string(64, 'b');
  EXPECT_EQ(ParseError(body).param, "atoma_client.salt_hash");
}

TEST(OpenAiBody, RevealSaltBody) {
  const std::string id = "0x" + std::string(64, 'a');
  const std::string salt = "0x" + std::string(64, '5');
  RevealSaltBody out;
  ASSERT_FALSE(ParseRevealSaltBody(json{{"request_id", id}, {"salt", salt}}, &out));
  EXPECT_EQ(out.request_id[0], 0xaa);
  EXPECT_EQ(out.request_id[31], 0xaa);
  EXPECT_EQ(out.salt[0], 0x55);
  EXPECT_EQ(out.salt[31], 0x55);
  const auto error = [](const json& body) {
    RevealSaltBody ignored;
    return ParseRevealSaltBody(body, &ignored).value_or(BodyError{"<parsed>", ""}).param;
  };
  EXPECT_EQ(error(json::array()), "");
  EXPECT_EQ(error(json{{"salt", salt}}), "request_id");
  EXPECT_EQ(error(json{{"request_id", "0x12"}, {"salt", salt}}), "request_id");
  EXPECT_EQ(error(json{{"request_id", id}}), "salt");
  EXPECT_EQ(error(json{{"request_id", id}, {"salt", 5}}), "salt");
  EXPECT_EQ(error(json{{"request_id", id}, {"salt", salt}, {"sault", salt}}), "sault");
}

TEST(OpenAiBody, VerifiedRequestsHaveNoAlternatives) {
  json body = VerifiedBody();
  body["logprobs"] = 2;
  EXPECT_EQ(ParseError(body).param, "logprobs");
  body["logprobs"] = 0;
  OpenAiRequest out;
  EXPECT_FALSE(ParseOpenAiBody(body, false, &out));
  EXPECT_TRUE(out.logprobs);
}

TEST(OpenAiBody, Extensions) {
  OpenAiRequest out;
  ASSERT_FALSE(ParseOpenAiBody(json{{"model", "m"},
                                    {"prompt", {5, 6, 7}},
                                    {"top_k", 40},
                                    {"stop_token_ids", {2, 9}},
                                    {"ignore_eos", true}},
                               false, &out));
  EXPECT_EQ(
      std::vector<int32_t>(out.proto.token_ids().ids().begin(), out.proto.token_ids().ids().end()),
      (std::vector<int32_t>{5, 6, 7}));
  EXPECT_EQ(out.proto.sampling().top_k(), 40);
  ASSERT_EQ(out.proto.stop_token_ids_size(), 2);
  EXPECT_EQ(out.proto.stop_token_ids(1), 9);
  EXPECT_TRUE(out.proto.ignore_eos());
  OpenAiRequest off;
  ASSERT_FALSE(ParseOpenAiBody(json{{"model", "m"}, {"prompt", "x"}, {"top_k", -1}}, false, &off));
  EXPECT_EQ(off.proto.sampling().top_k(), 0);

  EXPECT_EQ(ParseError(json{{"model", "m"}, {"prompt", {1, -2}}}).param, "prompt");
  EXPECT_EQ(ParseError(json{{"model", "m"}, {"prompt", "x"}, {"top_k", -2}}).param, "top_k");
  EXPECT_EQ(ParseError(json{{"model", "m"}, {"prompt", "x"}, {"stop_token_ids", "2"}}).param,
            "stop_token_ids");
  EXPECT_EQ(ParseError(json{{"model", "m"}, {"prompt", "x"}, {"ignore_eos", 1}}).param,
            "ignore_eos");
}

// What a client signs for an HTTP body is what it signs for the gRPC request of the same input:
// both sides rebuild the request with api::ConsensusRequestFromProto.
TEST(OpenAiBody, SameCanonicalRequestAsGrpc) {
  const crypto::PrivateKey key = ClientKey();
  consensus::ConsensusRequest r;
  r.model_digest[0] = 0xd1;
  r.prompt_token_ids = {1, 72, 105, 0};
  r.temperature_micro = 700'000;
  r.top_p_micro = 950'000;
  r.top_k = 40;
  r.max_tokens = 24;
  r.seed = 7;
  r.stop_strings = {"\n\n"};
  r.stop_token_ids = {257};
  r.ignore_eos = false;
  r.security = {consensus::SecurityMode::kSampling, 3, 0, 0, {}};
  r.max_fee = Uint256::FromLimbs(0, 0, 1, 2);
  r.client = key.address();
  r.client_nonce = 0xfeedbeefcafe1234ull;
  r.epoch = 5;
  const crypto::Hash256 id = consensus::RequestId(r);
  const crypto::Signature sig = key.Sign(consensus::ClientRequestDigest(kDomain, id));
  auto grpc =
      api::ConsensusRequestFromProto(api::ToGenerateRequest(r, "fake", sig), r.model_digest);
  ASSERT_TRUE(grpc.ok()) << grpc.status();

  const json body = {{"model", "fake"},
                     {"prompt", {1, 72, 105, 0}},
                     {"temperature", 0.7},
                     {"top_p", 0.95},
                     {"top_k", 40},
                     {"max_tokens", 24},
                     {"seed", 7},
                     {"stop", "\n\n"},
                     {"stop_token_ids", {257}},
                     {"atoma_security", "sampling:3"},
                     {"atoma_client",
                      {{"address", crypto::AddressToString(key.address())},
                       {"signature", Hex0x(sig)},
                       {"nonce", std::to_string(r.client_nonce)},
                       {"max_fee", r.max_fee.ToDecimal()},
                       {"epoch", 5}}}};
  OpenAiRequest out;
  ASSERT_FALSE(ParseOpenAiBody(json::parse(body.dump()), false, &out));
  auto http = api::ConsensusRequestFromProto(out.proto, r.model_digest);
  ASSERT_TRUE(http.ok()) << http.status();
  EXPECT_EQ(http->request_id, id);
  EXPECT_EQ(http->request_id, grpc->request_id);
  EXPECT_EQ(http->client_signature, sig);
  EXPECT_TRUE(api::CheckClientAuthorization(*http, kDomain).ok());

  // One parameter off (a temperature the client did not sign) is another request.
  json other = body;
  other["temperature"] = 0.8;
  OpenAiRequest changed;
  ASSERT_FALSE(ParseOpenAiBody(other, false, &changed));
  auto forged = api::ConsensusRequestFromProto(changed.proto, r.model_digest);
  ASSERT_TRUE(forged.ok());
  EXPECT_NE(forged->request_id, id);
  EXPECT_EQ(api::CheckClientAuthorization(*forged, kDomain).code(),
            absl::StatusCode::kPermissionDenied);
}

TEST(RequestHead, LineAndHeaders) {
  RequestHead h;
  ASSERT_EQ(ParseRequestHead("POST /v1/completions/?x=1 HTTP/1.1\r\nHost: a\r\n"
                             "content-LENGTH:  42 \r\nAuthorization: Bearer k\r\n"
                             "Connection: Keep-Alive\r\nExpect: 100-continue\r\nno colon",
                             &h),
            std::nullopt);
  EXPECT_EQ(h.method, "POST");
  EXPECT_EQ(h.path, "/v1/completions");
  EXPECT_TRUE(h.http11);
  EXPECT_EQ(h.content_length, 42);
  EXPECT_FALSE(h.chunked);
  EXPECT_TRUE(h.expect_continue);
  EXPECT_EQ(h.connection, "keep-alive");
  EXPECT_EQ(h.authorization, "Bearer k");
  ASSERT_EQ(ParseRequestHead("GET / HTTP/1.0\r\nTransfer-Encoding: chunked", &h), std::nullopt);
  EXPECT_EQ(h.path, "/");
  EXPECT_FALSE(h.http11);
  EXPECT_TRUE(h.chunked);
  EXPECT_EQ(h.content_length, 0);
  // The same length twice is one length; two lengths are refused (request smuggling).
  EXPECT_EQ(ParseRequestHead("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5", &h),
            std::nullopt);
  EXPECT_EQ(ParseRequestHead("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6", &h),
            "conflicting Content-Length headers");
  for (const char* bad :
       {"POST / HTTP/1.1\r\nContent-Length: -1", "POST / HTTP/1.1\r\nContent-Length: 1e3",
        "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999"}) {
    EXPECT_EQ(ParseRequestHead(bad, &h), "bad Content-Length") << bad;
  }
  for (const char* bad : {"", "GET", "GET /", "GET\r\n / HTTP/1.1"}) {
    EXPECT_EQ(ParseRequestHead(bad, &h), "malformed request line") << bad;
  }
}

}  // namespace
}  // namespace atoma::http
