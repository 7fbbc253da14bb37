#include "tools/cli/watch_client.h"

#include <chrono>
#include <nlohmann/json.hpp>

#include "tools/cli/agent_client.h"

namespace sk::cli {

Result<WatchAnswer> WatchOnce(const std::string& socket, const std::string& prefix,
                              std::optional<std::uint64_t> after, unsigned timeout_s) {
  std::string target = "/v1/watch?prefix=" + QueryEscape(prefix) + "&timeout_s=" + std::to_string(timeout_s);
  if (after) target += "&after=" + std::to_string(*after);
  // The agent answers by the timeout; the margin covers a busy agent.
  HttpRequest req{"GET", target, {}, std::chrono::milliseconds((timeout_s + 15) * 1000ULL)};
  SK_ASSIGN_OR_RETURN(HttpResponse r, HttpCall(socket, req));
  if (r.status == 204) {
    auto seq = r.Header("x-sealkeep-seq");
    WatchAnswer a;
    try {
      a.seq = seq ? std::stoull(std::string(*seq)) : 0;
    } catch (const std::exception&) {
      return Status(Code::kUnavailable, "bad_response", "sealkeepd's X-Sealkeep-Seq is not a number");
    }
    return a;
  }
  SK_RETURN_IF_ERROR(StatusFromResponse(r));
  Json j = Json::parse(r.body, nullptr, false);
  if (!j.is_object() || !j["seq"].is_number_unsigned() || !j["changes"].is_array()) {
    return Status(Code::kUnavailable, "bad_response", "sealkeepd's watch answer is not {seq, changes}");
  }
  WatchAnswer a;
  a.seq = j["seq"].get<std::uint64_t>();
  for (const Json& c : j["changes"]) {
    a.changes.push_back({U64(c, "seq"), Str(c, "path"), U64(c, "version"), Str(c, "kind")});
  }
  return a;
}

}  // namespace sk::cli
