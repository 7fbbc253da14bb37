#include "agent/api/op_parser.h"

#include <initializer_list>
#include <vector>

namespace sk::api {
namespace {

using secrets::Op;

Status BadRequest(const std::string& why) { return InvalidArgument(why, "bad_request"); }

// The fields `type` takes from `source`, besides "op" and "path" in a txn.
std::vector<std::string_view> FieldsOf(Op::Type type, OpSource source) {
  const bool txn = source == OpSource::kTxn;
  switch (type) {
    case Op::Type::kPut:
      return {"value", "value_b64", "cas", "expires_in", "labels", "max_versions"};
    case Op::Type::kDelete:
    case Op::Type::kCheckVersion:
      return {"version", "cas"};
    case Op::Type::kUndelete:
    case Op::Type::kDestroy:
      if (txn) return {"version", "cas"};
      return {"version"};
    case Op::Type::kRollback:
      return {"to", "cas"};
    case Op::Type::kFloor:
      return {"floor"};
    case Op::Type::kStage:  // rotation ops have their own routes (rotation_handlers.cc), not txn
    case Op::Type::kPromote:
    case Op::Type::kAbort:
      return {};
  }
  return {};
}

Status OnlyTheseFields(const Json& obj, Op::Type type, OpSource source) {
  std::vector<std::string_view> allowed = FieldsOf(type, source);
  if (source == OpSource::kTxn) {
    allowed.push_back("op");
    allowed.push_back("path");
  }
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    bool ok = false;
    for (std::string_view a : allowed) ok |= it.key() == a;
    if (!ok) return BadRequest("unknown field '" + it.key().substr(0, 64) + "'");
  }
  return OkStatus();
}

// A field the op cannot go without.
Result<std::uint64_t> Required(const Json& obj, std::string_view key, std::string_view op) {
  SK_ASSIGN_OR_RETURN(std::optional<std::uint64_t> v, U64Field(obj, key));
  if (!v) return BadRequest(std::string(op) + " needs '" + std::string(key) + "'");
  return *v;
}

Status FillPut(RequestBody& body, const Json& obj, Op& op) {
  SK_ASSIGN_OR_RETURN(op.value, ValueField(body, obj));
  SK_ASSIGN_OR_RETURN(auto expires, U64Field(obj, "expires_in"));
  op.expires_in_s = expires.value_or(0);
  SK_ASSIGN_OR_RETURN(op.labels, LabelsField(obj));
  SK_ASSIGN_OR_RETURN(auto max_versions, U64Field(obj, "max_versions"));
  if (max_versions) {
    if (*max_versions > 1'000'000) return BadRequest("'max_versions' is at most 1000000");
    op.max_versions = static_cast<std::uint32_t>(*max_versions);
  }
  return OkStatus();
}

}  // namespace

Result<secrets::Labels> LabelsField(const Json& obj) {
  secrets::Labels out;
  auto it = obj.find("labels");
  if (it == obj.end() || it->is_null()) return out;
  if (!it->is_object()) return BadRequest("'labels' must be an object of strings");
  for (auto l = it->begin(); l != it->end(); ++l) {
    if (!l->is_string()) return BadRequest("label values must be strings");
    out[l.key()] = l->get<std::string>();
  }
  return out;
}

std::optional<Op::Type> OpTypeFromName(std::string_view name) {
  static constexpr std::pair<std::string_view, Op::Type> kNames[] = {
      {"put", Op::Type::kPut},           {"delete", Op::Type::kDelete},     {"undelete", Op::Type::kUndelete},
      {"destroy", Op::Type::kDestroy},   {"rollback", Op::Type::kRollback}, {"floor", Op::Type::kFloor},
      {"check", Op::Type::kCheckVersion}};
  for (const auto& [n, t] : kNames) {
    if (n == name) return t;
  }
  return std::nullopt;
}

Result<Op> ParseOp(RequestBody& body, const Json& obj, Op::Type type, OpSource source) {
  if (!obj.is_object()) return BadRequest("each op must be an object");
  SK_RETURN_IF_ERROR(OnlyTheseFields(obj, type, source));
  Op op;
  op.type = type;
  if (type != Op::Type::kFloor) {
    SK_ASSIGN_OR_RETURN(op.cas, U64Field(obj, "cas"));
  }
  switch (type) {
    case Op::Type::kPut: {
      SK_RETURN_IF_ERROR(FillPut(body, obj, op));
      break;
    }
    case Op::Type::kDelete:
    case Op::Type::kUndelete: {
      SK_ASSIGN_OR_RETURN(op.version, U64Field(obj, "version"));
      break;
    }
    case Op::Type::kDestroy: {
      SK_ASSIGN_OR_RETURN(std::uint64_t v, Required(obj, "version", "destroy"));
      if (v == 0) return BadRequest("destroy needs 'version' (1 or more)");
      op.version = v;
      break;
    }
    case Op::Type::kCheckVersion: {
      SK_ASSIGN_OR_RETURN(std::uint64_t v, Required(obj, "version", "check"));
      op.version = v;
      break;
    }
    case Op::Type::kRollback: {
      SK_ASSIGN_OR_RETURN(std::uint64_t to, Required(obj, "to", "rollback"));
      op.version = to;
      break;
    }
    case Op::Type::kFloor: {
      SK_ASSIGN_OR_RETURN(op.floor, Required(obj, "floor", "floor"));
      break;
    }
    case Op::Type::kStage:
    case Op::Type::kPromote:
    case Op::Type::kAbort:
      return BadRequest("a rotation is begun, finished or aborted on its own route");
  }
  return op;
}

Result<Op> ParseTxnOp(RequestBody& body, const Json& obj) {
  if (!obj.is_object()) return BadRequest("each op must be an object");
  SK_ASSIGN_OR_RETURN(std::optional<std::string> kind, StringField(obj, "op"));
  SK_ASSIGN_OR_RETURN(std::optional<std::string> path, StringField(obj, "path"));
  if (!kind || !path) return BadRequest("each op needs 'op' and 'path'");
  std::optional<Op::Type> type = OpTypeFromName(*kind);
  if (!type) return BadRequest("unknown op '" + kind->substr(0, 32) + "'");
  SK_ASSIGN_OR_RETURN(Op op, ParseOp(body, obj, *type, OpSource::kTxn));
  op.path = *path;
  return op;
}

}  // namespace sk::api
