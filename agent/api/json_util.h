// Strict JSON for the API: request bodies are objects, at most 32 levels deep, valid
// UTF-8, no duplicate keys, no unknown fields; numbers that should be versions are
// non-negative integers. Parsing never throws out of this module.
//
// Secret values in request bodies never reach a std::string: request_body.h parses them
// into locked memory (ParseRequestBody, ValueField). Response bodies that hold a value are
// built into one pre-sized string the server wipes after sending.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "crypto/bytes.h"
#include "crypto/secret_bytes.h"
#include "crypto/status.h"

namespace sk::api {

using Json = nlohmann::json;

inline constexpr int kMaxJsonDepth = 32;

// A body that carries no value (ParseRequestBody's rules; its values, if any, are dropped):
// reason bad_json (400) with what is wrong; an empty body parses as {}. The message never
// quotes the body: a syntax error is "malformed JSON at byte N", N the offset (from 0)
// where parsing stopped.
Result<Json> ParseJsonObject(std::string_view body);
// Refuses fields other than `allowed` (reason bad_request, naming the field).
Status OnlyFields(const Json& obj, std::initializer_list<std::string_view> allowed);
// Optional fields of a given type; bad_request when present with the wrong type.
Result<std::optional<std::uint64_t>> U64Field(const Json& obj, std::string_view key);
Result<std::optional<std::string>> StringField(const Json& obj, std::string_view key);

bool IsValidUtf8(ByteView bytes);
// Appends s as a JSON string literal (with quotes) to out.
void AppendJsonString(std::string& out, std::string_view s);

// Error body: {"error":{"code","message","request_id"}}.
std::string ErrorBody(std::string_view code, std::string_view message, std::string_view request_id,
                      const Json* extra = nullptr);

}  // namespace sk::api
