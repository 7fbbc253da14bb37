#include "tools/cli/command.h"

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <utility>
#include <vector>

namespace sk::cli {
namespace {

std::vector<std::pair<int, AddCommands>>& Registry() {
  static std::vector<std::pair<int, AddCommands>> registry;
  return registry;
}

}  // namespace

GlobalOptions& Globals() {
  static GlobalOptions options;
  return options;
}

Registrar::Registrar(AddCommands add, int order) { Registry().emplace_back(order, add); }

void AddRegisteredCommands(CLI::App& app, const std::string& until) {
  auto& reg = Registry();
  std::stable_sort(reg.begin(), reg.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (auto& [order, add] : reg) {
    add(app);
    if (!until.empty() &&
        !app.get_subcommands([&until](CLI::App* sub) { return sub->check_name(until); }).empty())
      return;
  }
}

int ExitCodeFor(const Status& status) {
  switch (status.code()) {
    case Code::kOk:
      return kExitOk;
    case Code::kInvalidArgument:
    case Code::kTooLarge:
      return kExitUsage;
    case Code::kNotFound:
      return kExitNotFound;
    case Code::kAlreadyExists:
    case Code::kConflict:
    case Code::kFailedPrecondition:
    case Code::kExpired:
      return kExitConflict;
    case Code::kForbidden:
    case Code::kUnauthenticated:
      return kExitForbidden;
    case Code::kSealed:
    case Code::kUnavailable:
    case Code::kResourceExhausted:
      return kExitSealed;
    case Code::kCorruption:
      return kExitCorruption;
    case Code::kUnimplemented:
    case Code::kInternal:
      return kExitError;
  }
  return kExitError;
}

void Fail(const Status& status) {
  if (Globals().json) {
    nlohmann::json j = {
        {"error", {{"code", std::string(status.reason())}, {"message", std::string(status.message())}}}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::fprintf(stderr, "sealkeep: %s\n", status.ToString().c_str());
  }
  throw ExitRequest{ExitCodeFor(status)};
}

}  // namespace sk::cli
