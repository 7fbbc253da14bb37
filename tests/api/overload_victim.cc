// The overload test's victim (tests/api/overload_test.cc): becomes UID:GID (started as
// root: the build folder need not be open to that user), reads v/secret N times on one
// kept-alive connection to the socket and prints "ok failed p50_us p99_us".
//
// A program of its own, started by fork + exec: a child forked from the test while its
// 20 flood threads run, that then allocates, can deadlock on an allocator lock one of
// them held at the fork (GCC 12's ASan does not lock its allocator around fork), which is
// how the test once hung under ASan on a CI machine. A fresh program has no such lock.
#include <grp.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "tests/fixtures/agent_process.h"

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: overload_victim SOCKET READS UID GID\n");
    return 2;
  }
  const std::string socket = argv[1];
  const int reads = std::stoi(argv[2]);
  const auto uid = static_cast<uid_t>(std::stoul(argv[3]));
  const auto gid = static_cast<gid_t>(std::stoul(argv[4]));
  if (::setgroups(0, nullptr) != 0 || ::setgid(gid) != 0 || ::setuid(uid) != 0) {
    std::perror("overload_victim: cannot become the victim user");
    return 3;
  }
  std::vector<double> us;
  us.reserve(static_cast<std::size_t>(reads));
  int ok = 0, failed = 0;
  auto conn = std::make_unique<sk::testing::HttpConnection>(socket);
  for (int i = 0; i < reads; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    sk::testing::HttpResponse r = conn->Request("GET", "/v1/secrets/v/secret");
    const auto t1 = std::chrono::steady_clock::now();
    if (r.status == 200 && r.Json().value("value", "") == "victim-value") {
      ++ok;
      us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
    } else {
      ++failed;
      conn = std::make_unique<sk::testing::HttpConnection>(socket);  // as a client would: reconnect
    }
  }
  std::sort(us.begin(), us.end());
  const double p50 = us.empty() ? 0 : us[us.size() / 2];
  const double p99 = us.empty() ? 0 : us[std::min(us.size() - 1, us.size() * 99 / 100)];
  std::printf("%d %d %f %f\n", ok, failed, p50, p99);
  return 0;
}
