#include <iostream>

#include "cli/app.h"

int main(int argc, char** argv) {
  return lf::cli::runCli(argc, argv, lf::cli::Io{&std::cout, &std::cerr});
}
