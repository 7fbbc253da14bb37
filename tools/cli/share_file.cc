#include "tools/cli/share_file.h"

#include <cerrno>
#include <cstring>
#include <fstream>

#include "tools/cli/command.h"
#include "tools/cli/http_client.h"

namespace sk::cli {

std::vector<RecoveryShare> ReadSharesFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) Fail(Status(Code::kUnavailable, "io_error", "cannot read " + path + ": " + std::strerror(errno)));
  std::vector<RecoveryShare> shares;
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    const auto first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos || line[first] == '#') continue;
    Result<RecoveryShare> share = ParseRecoveryShare(line);
    WipeString(line);
    if (!share.ok()) Fail(share.status().WithContext(path + " line " + std::to_string(n)));
    shares.push_back(std::move(share).value());
  }
  return shares;
}

}  // namespace sk::cli
