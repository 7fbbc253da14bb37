// libFuzzer target: what the API makes of a request before any handler runs. The input is
// "METHOD TARGET\n" then a body: the route table (MatchRoute), the body parser that keeps
// values out of std::string (ParseRequestBody, also with KV v2's raw "data" member), and the
// op parsers of a single route and of a txn (ParseOp, ParseTxnOp). Any crash, leak or
// sanitizer report is a finding; errors are the expected answer to most inputs.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "agent/api/op_parser.h"
#include "agent/api/request_body.h"
#include "agent/api/router.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace sk::api;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::size_t nl = in.find('\n');
  std::string_view line = in.substr(0, nl);
  std::string_view body = nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1);
  std::size_t sp = line.find(' ');
  if (sp != std::string_view::npos) (void)MatchRoute(line.substr(0, sp), line.substr(sp + 1));

  (void)ParseRequestBody(body, "data");
  auto parsed = ParseRequestBody(body);
  if (!parsed.ok()) return 0;
  const Json& j = parsed->json;
  (void)ParseOp(*parsed, j, sk::secrets::Op::Type::kPut, OpSource::kRoute);
  (void)ParseOp(*parsed, j, sk::secrets::Op::Type::kRollback, OpSource::kRoute);
  (void)LabelsField(j);
  if (auto ops = j.find("ops"); ops != j.end() && ops->is_array()) {
    for (const Json& op : *ops) (void)ParseTxnOp(*parsed, op);
  }
  return 0;
}
