// atoma-cli keygen / address.
#include "atoma/crypto/keys.h"

#include <cstdio>
#include <string>

#include "commands.h"

namespace atoma::cli {

void AddKeyCommands(CLI::App& app) {
  CLI::App* keygen = app.add_subcommand(
      "keygen",
      "Create a new secp256k1 node key. Writes the private key as 64 hex digits to FILE with "
      "mode 0600 and prints the node's Ethereum address on stdout.");
  auto out = std::make_shared<std::string>();
  auto force = std::make_shared<bool>(false);
  keygen->add_option("-o,--out", *out, "key file to create")->required();
  keygen->add_flag("--force", *force, "replace FILE if it exists (the old key is lost)");
  keygen->callback([out, force] {
    auto key = crypto::PrivateKey::Generate();
    if (!key.ok()) Fail(key.status());
    if (absl::Status s = crypto::WriteKeyFile(*out, *key, *force); !s.ok()) Fail(s);
    std::printf("%s\n", crypto::AddressToString(key->address()).c_str());
    std::fprintf(stderr, "atoma-cli: wrote %s (mode 0600); keep it secret and backed up\n",
                 out->c_str());
  });

  CLI::App* address =
      app.add_subcommand("address", "Print the Ethereum address (EIP-55) of a node key file.");
  auto key_path = std::make_shared<std::string>();
  address->add_option("-k,--key", *key_path, "key file (as written by keygen)")->required();
  address->callback([key_path] {
    auto key = crypto::ReadKeyFile(*key_path);
    if (!key.ok()) Fail(key.status());
    std::printf("%s\n", crypto::AddressToString(key->address()).c_str());
  });
}

}  // namespace atoma::cli
