// Share lines read from a file (`--shares-file`): one share per line (crypto/recovery_share.h),
// blank lines and lines starting with '#' skipped. What `backup verify|restore` reads for the
// recovery key and what the signing `sealkeep fleet` commands read for the fleet key.
#pragma once

#include <string>
#include <vector>

#include "crypto/recovery_share.h"

namespace sk::cli {

// Each line is wiped once parsed. Fails (Fail(): exit 6 io_error when the file cannot be
// read; the parse error, with the line number, for a line that is not a share).
std::vector<RecoveryShare> ReadSharesFile(const std::string& path);

}  // namespace sk::cli
