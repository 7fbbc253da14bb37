// The one parser of the ops a request asks for: a single route's body (PUT
// /v1/secrets/{path}, POST .../undelete, /destroy, /rollback, /floor) and each op of
// POST /v1/txn go through ParseOp, so their fields, checks and messages are the same.
//
// Fields by op (a txn op also has "op" and "path"; the route's path comes from its URL):
//   put       value | value_b64 (exactly one), cas, expires_in, labels, max_versions
//   delete    version, cas                 (txn only: the route takes ?version=)
//   undelete  version; in a txn also cas
//   destroy   version (required, >= 1); in a txn also cas
//   rollback  to (required), cas
//   floor     floor (required)
//   check     version (required), cas      (txn only)
// Any other field is refused (bad_request, naming it), as is a field of the wrong type.
// Pure: no I/O, no policy; the fuzzer (tests/fuzz/fuzz_api_request.cc) calls it on any
// parsed body.
#pragma once

#include <optional>
#include <string_view>

#include "agent/api/request_body.h"
#include "agent/secrets/service.h"

namespace sk::api {

enum class OpSource { kRoute, kTxn };

// The "labels" member of `obj` (absent or null: none): an object of strings, else bad_request.
Result<secrets::Labels> LabelsField(const Json& obj);

// "put", "delete", "undelete", "destroy", "rollback", "floor", "check" (txn names).
std::optional<secrets::Op::Type> OpTypeFromName(std::string_view name);

// Parses `obj` as an op of `type` into an Op (its path left empty for kRoute). `body` holds
// the values (ValueField).
Result<secrets::Op> ParseOp(RequestBody& body, const Json& obj, secrets::Op::Type type, OpSource source);

// One txn op: {"op": NAME, "path": P, ...fields of that op}.
Result<secrets::Op> ParseTxnOp(RequestBody& body, const Json& obj);

}  // namespace sk::api
