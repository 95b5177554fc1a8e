// Test-only: a throwaway CA and a server certificate for 127.0.0.1 (EC P-256, one day), made with
// the openssl command-line tool, for the TLS tests of the peer and HTTP layers.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace atoma::test {

struct TestCerts {
  std::string ca;    // the CA's certificate (PEM): what a client trusts
  std::string cert;  // the server's certificate for IP 127.0.0.1 (PEM), signed by the CA
  std::string key;   // the server's private key (PEM)
};

// Writes the files into `dir` (created) and returns their contents; the CA is named `name`.
inline TestCerts MakeTestCerts(const std::filesystem::path& dir, const std::string& name) {
  std::filesystem::create_directories(dir);
  const std::string script = absl::StrCat(
      "set -e; cd '", dir.string(), "'; printf 'subjectAltName=IP:127.0.0.1\\n' > ext.cnf; ",
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes ",
      "-keyout ca.key -out ca.pem -days 1 -subj /CN=", name, " 2>/dev/null; ",
      "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout node.key ",
      "-out node.csr -subj /CN=node 2>/dev/null; ",
      "openssl x509 -req -in node.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out node.pem ",
      "-days 1 -extfile ext.cnf 2>/dev/null");
  EXPECT_EQ(std::system(absl::StrCat("bash -c \"", script, "\"").c_str()), 0);
  auto read = [&](const char* file) {
    std::ifstream in(dir / file);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  };
  return {read("ca.pem"), read("node.pem"), read("node.key")};
}

}  // namespace atoma::test
