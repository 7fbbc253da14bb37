// The verified state of the fleet journal up to its head: the head (seq, hash), the hosts
// its host entries admitted, and each path's last version. Accept() takes the next encoded
// entry and applies it only if it extends the head (seq + 1, prev_hash = the head's hash),
// verifies under the pinned fleet signing key, and its body is valid in this state (a txn's
// versions follow on, a host's groups parse). Both the writer and every host keep one.
//
// Errors: fleet_chain_broken (kCorruption) for an entry that does not extend the head;
// bad_signature and malformed_fleet_entry (fleet_format.h). A refused entry changes nothing.
// Not thread-safe.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "agent/fleet/fleet_format.h"

namespace sk::fleet {

struct ChainHead {
  std::uint64_t seq = 0;  // 0: the empty journal
  Digest hash{};          // zero for the empty journal
};

// A path's last op as the chain says it.
struct PathHead {
  std::uint64_t version = 0;
  std::uint64_t seq = 0;  // the entry that wrote it
  OpKind kind = OpKind::kPut;
  std::vector<std::string> groups;
};

class FleetChain {
 public:
  explicit FleetChain(Bytes signer_public_key) : signer_(std::move(signer_public_key)) {}

  [[nodiscard]] Result<Entry> Accept(ByteView encoded);
  // Accept in two steps: Check verifies without changing anything; Apply takes a checked
  // entry (its hash given, of its encoding).
  [[nodiscard]] Result<Entry> Check(ByteView encoded) const;
  void Apply(const Entry& checked, const Digest& hash);

  const ChainHead& head() const { return head_; }
  const std::map<std::string, HostRecord, std::less<>>& hosts() const { return hosts_; }
  const ByteView signer() const { return signer_; }
  // 0 when the path was never written.
  std::uint64_t LastVersion(std::string_view path) const;
  const std::map<std::string, PathHead, std::less<>>& paths() const { return paths_; }
  // The admitted hosts in at least one of `groups`, by host id.
  std::vector<const HostRecord*> Entitled(const std::vector<std::string>& groups) const;

  // Whether two ascending name lists share a name.
  static bool Meet(const std::vector<std::string>& a, const std::vector<std::string>& b);

 private:
  Bytes signer_;
  ChainHead head_;
  std::map<std::string, HostRecord, std::less<>> hosts_;
  std::map<std::string, PathHead, std::less<>> paths_;
};

}  // namespace sk::fleet
