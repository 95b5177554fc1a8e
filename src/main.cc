// atoma-node: the daemon. Everything lives in the node module's composition root.
#include "atoma/node/node.h"

int main(int argc, char** argv) { return atoma::node::RunNode(argc, argv); }
