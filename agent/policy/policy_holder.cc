#include "agent/policy/policy_holder.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <utility>

namespace sk::policy {

PolicyHolder::PolicyHolder(std::shared_ptr<const Policy> initial) {
  if (!initial)
    initial = std::make_shared<const Policy>("(empty)", std::vector<Role>{}, std::vector<Binding>{});
  current_.store(std::move(initial), std::memory_order_release);
}

Status PolicyHolder::Reload(std::string_view toml_text, std::string_view source_name) {
  SK_ASSIGN_OR_RETURN(std::shared_ptr<const Policy> next, ParsePolicy(toml_text, source_name));
  current_.store(std::move(next), std::memory_order_release);
  return OkStatus();
}

Status PolicyHolder::ReloadFromFile(const std::string& path) {
  SK_ASSIGN_OR_RETURN(std::string text, ReadPolicyFile(path));
  return Reload(text, path);
}

Result<std::string> ReadPolicyFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Unavailable("cannot open policy file " + path + ": " + std::strerror(errno), "policy_unreadable");
  }
  std::string text;
  char buf[8192];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    text.append(buf, static_cast<std::size_t>(in.gcount()));
    if (text.size() > kMaxPolicyFileBytes) {
      return InvalidArgument("policy file " + path + " is larger than 1 MiB", "policy_invalid");
    }
  }
  if (in.bad()) return Unavailable("cannot read policy file " + path, "policy_unreadable");
  return text;
}

}  // namespace sk::policy
