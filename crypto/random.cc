#include "crypto/random.h"

#include <sys/random.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace sk {

Status FillRandom(std::span<std::uint8_t> out) {
  std::size_t done = 0;
  while (done < out.size()) {
    ssize_t n = getrandom(out.data() + done, out.size() - done, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Unavailable(std::string("getrandom failed: ") + std::strerror(errno), "random_failed");
    }
    done += static_cast<std::size_t>(n);
  }
  return OkStatus();
}

Result<Bytes> RandomBytes(std::size_t n) {
  Bytes out(n);
  SK_RETURN_IF_ERROR(FillRandom(out));
  return out;
}

Result<SecretBytes> RandomSecret(std::size_t n) {
  SecretBytes out(n);
  SK_RETURN_IF_ERROR(FillRandom(out.Expose()));
  return out;
}

}  // namespace sk
