// libFuzzer target: the CLI's parser of the agent's HTTP responses (ParseResponseHead), on
// any bytes: a response from something that is not sealkeepd, or a broken one, must be an
// error (bad_response, response_too_large), never a crash or an over-read.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "tools/cli/http_client.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  sk::cli::ResponseLimits small;
  small.max_head_bytes = 1024;
  small.max_body_bytes = 4096;
  (void)sk::cli::ParseResponseHead(bytes);
  (void)sk::cli::ParseResponseHead(bytes, small);
  return 0;
}
