#include <iostream>

#include "worker/exec/exec_command.h"

int main(int argc, char** argv) {
  return lf::worker::runWorkerCli(argc, argv, std::cout, std::cerr);
}
