// atoma-cli: operator and developer tool (keys, test models, generation against a node).
#include "commands.h"

#ifndef ATOMA_VERSION
#define ATOMA_VERSION "unknown"
#endif

int main(int argc, char** argv) {
  CLI::App app{"atoma-cli: keys, test models and requests for atoma-node.", "atoma-cli"};
  app.set_version_flag("--version", ATOMA_VERSION);
  app.require_subcommand(1);
  atoma::cli::AddKeyCommands(app);
  atoma::cli::AddModelCommand(app);
  atoma::cli::AddGenerateCommand(app);
  atoma::cli::AddAuthorizeCommand(app);
  atoma::cli::AddLedgerCommand(app);
  atoma::cli::AddVerifyCommand(app);
  atoma::cli::AddOperatorCommands(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::RuntimeError& e) {
    return e.get_exit_code();  // the command printed its message already
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return 0;
}
