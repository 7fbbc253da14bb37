#include "tools/cli/agent_client.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "agent/secrets/path.h"
#include "crypto/bytes.h"
#include "crypto/locked_pool.h"
#include "tools/cli/command.h"

namespace sk::cli {

Code CodeForHttpStatus(int http_status, std::string_view error_code) {
  switch (http_status) {
    case 400:
    case 411:
      return Code::kInvalidArgument;
    case 401:
      return Code::kUnauthenticated;
    case 403:
      return Code::kForbidden;
    case 404:
      return Code::kNotFound;
    case 405:
    case 501:
      return Code::kUnimplemented;
    case 409:
      return Code::kConflict;
    case 410:
      return Code::kExpired;
    case 413:
    case 431:
      return Code::kTooLarge;
    case 429:
      return Code::kResourceExhausted;
    case 500:
      if (error_code == "seal_invalid" || error_code == "chain_broken" || error_code == "content_mismatch" ||
          error_code == "key_retired") {
        return Code::kCorruption;
      }
      return Code::kInternal;
    case 503:
      if (error_code == "store_failed" || error_code == "audit_unavailable" ||
          error_code == "anchor_unavailable") {
        return Code::kUnavailable;
      }
      return Code::kSealed;
    default:
      break;
  }
  if (http_status >= 400 && http_status < 500) return Code::kInvalidArgument;
  return Code::kInternal;
}

namespace {

// The "error" object of an error answer, or an empty object.
Json ErrorObject(const HttpResponse& r) {
  Json j = Json::parse(r.body, nullptr, /*allow_exceptions=*/false);
  if (j.is_object() && j.contains("error") && j["error"].is_object()) return j["error"];
  // GET /v1/health answers 503 {"status":"sealed","reason","message"}.
  if (j.is_object() && j.contains("reason") && j["reason"].is_string()) {
    return {{"code", j["reason"]}, {"message", j.value("message", std::string())}};
  }
  return Json::object();
}

}  // namespace

Status StatusFromResponse(const HttpResponse& response) {
  if (response.status >= 200 && response.status < 300) return OkStatus();
  Json err = ErrorObject(response);
  std::string code = Str(err, "code");
  std::string message = Str(err, "message");
  if (code.empty()) code = "http_" + std::to_string(response.status);
  if (message.empty())
    message = "sealkeepd answered " + std::to_string(response.status) + " " + response.reason;
  return Status(CodeForHttpStatus(response.status, code), code, message);
}

HttpResponse CallOrFail(const HttpRequest& request, const ErrorHook& on_error) {
  auto r = HttpCall(Globals().socket, request);
  if (!r.ok()) Fail(r.status());
  Status st = StatusFromResponse(*r);
  if (st.ok()) return std::move(r).value();
  if (on_error) on_error(*r, ErrorObject(*r));
  if (Globals().json && ErrorObject(*r).is_object() && !ErrorObject(*r).empty()) {
    PrintBody(*r);
    throw ExitRequest{ExitCodeFor(st)};
  }
  Fail(st);
}

Json ParseBody(const HttpResponse& response) {
  Json j = Json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) {
    Fail(Status(
        Code::kUnavailable, "bad_response",
        "sealkeepd answered " + std::to_string(response.status) + " with a body that is not a JSON object"));
  }
  return j;
}

void PrintBody(const HttpResponse& response) {
  // Straight to the descriptor: the body may hold a value, and stdio's buffer would keep a copy.
  std::fflush(stdout);
  std::string_view out = response.body;
  while (!out.empty()) {
    ssize_t n = ::write(STDOUT_FILENO, out.data(), out.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0)
      Fail(Unavailable(std::string("cannot write to stdout: ") + std::strerror(errno), "write_failed"));
    out.remove_prefix(static_cast<std::size_t>(n));
  }
  if (response.body.empty() || response.body.back() != '\n') std::printf("\n");
  std::fflush(stdout);
}

std::string SecretTarget(const std::string& path, std::string_view suffix) {
  if (Status st = secrets::ValidatePath(path); !st.ok()) Fail(st);
  return "/v1/secrets/" + path + std::string(suffix);
}

std::string CheckedSnapshotName(const std::string& name) {
  if (Status st = secrets::ValidateSnapshotName(name); !st.ok()) Fail(st);
  return name;
}

std::string CheckedPrefix(const std::string& prefix) {
  if (Status st = secrets::ValidatePrefix(prefix); !st.ok()) Fail(st);
  return prefix;
}

std::string QueryEscape(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if ((u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || (u >= '0' && u <= '9') || u == '-' || u == '.' ||
        u == '_' || u == '~' || u == '/') {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 15]);
    }
  }
  return out;
}

SecretBytes ReadSecretInput(const std::string& file, std::size_t cap) {
  const bool from_stdin = file.empty() || file == "-";
  const std::string name = from_stdin ? std::string("stdin") : file;
  int fd = from_stdin ? STDIN_FILENO : ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) Fail(InvalidArgument("cannot read " + file + ": " + std::strerror(errno), "bad_input"));
  if (from_stdin && ::isatty(fd))
    std::fprintf(stderr, "sealkeep: reading from the terminal; end with Ctrl-D\n");
  SecretBytes buf(4096);
  std::size_t used = 0;
  int err = 0;
  while (true) {
    if (used == buf.size()) {
      if (buf.size() >= cap + 1) break;
      SecretBytes bigger(std::min(buf.size() * 2, cap + 1));
      std::memcpy(bigger.Expose().data(), buf.Expose().data(), used);
      buf = std::move(bigger);  // the old buffer is wiped as it is released
    }
    ssize_t n = ::read(fd, buf.Expose().data() + used, buf.size() - used);
    if (n > 0) {
      used += static_cast<std::size_t>(n);
    } else if (n == 0) {
      break;
    } else if (errno != EINTR) {
      err = errno;
      break;
    }
  }
  if (!from_stdin) ::close(fd);
  if (err != 0) Fail(InvalidArgument("cannot read " + name + ": " + std::strerror(err), "bad_input"));
  if (used > cap) {
    Fail(Status(Code::kTooLarge, "value_too_large",
                name + " holds more than " + std::to_string(cap) + " bytes"));
  }
  buf.Truncate(used);
  return buf;
}

std::string FormatTimeMs(std::uint64_t ms) {
  if (ms == 0) return "-";
  std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  if (::gmtime_r(&t, &tm) == nullptr) return std::to_string(ms);
  char buf[32];
  std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%SZ", &tm);
  return n == 0 ? std::to_string(ms) : std::string(buf, n);
}

std::string ShortTxn(const Json& answer) {
  std::string id = Str(answer, "txn_id");
  if (id.size() <= 10) return id;
  return id.substr(0, 8) + "..";
}

std::uint64_t U64(const Json& j, const char* key) {
  if (!j.is_object()) return 0;
  auto it = j.find(key);
  if (it == j.end() || !it->is_number_unsigned()) return 0;
  return it->get<std::uint64_t>();
}

std::string Str(const Json& j, const char* key) {
  if (!j.is_object()) return "";
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return "";
  return it->get<std::string>();
}

void PrintTable(const std::vector<std::vector<std::string>>& rows, std::FILE* out, const char* indent) {
  std::vector<std::size_t> width;
  for (const auto& row : rows) {
    if (row.size() > width.size()) width.resize(row.size(), 0);
    for (std::size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  for (const auto& row : rows) {
    std::string line = indent;
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(width[i] - row[i].size() + 2, ' ');
    }
    std::fprintf(out, "%s\n", line.c_str());
  }
}

void PrintRestoreRefusal(const HttpResponse& response, const Json& error) {
  if (Globals().json || Str(error, "code") != "restore_refused") return;
  Status st = StatusFromResponse(response);
  std::vector<std::vector<std::string>> rows = {{"PATH", "VERSION", "REASON", "DETAIL"}};
  for (const auto& fl : error.value("failures", Json::array())) {
    rows.push_back(
        {Str(fl, "path"), std::to_string(U64(fl, "version")), Str(fl, "reason"), Str(fl, "message")});
  }
  std::fflush(stdout);
  std::fprintf(stderr, "sealkeep: %s\n", st.ToString().c_str());
  PrintTable(rows, stderr, "  ");
  throw ExitRequest{ExitCodeFor(st)};
}

Result<SecretBytes> FetchValue(const std::string& path, std::string_view query, std::uint64_t* version) {
  std::string target = SecretTarget(path, "?encoding=base64");
  if (!query.empty()) target += "&" + std::string(query);
  SK_ASSIGN_OR_RETURN(HttpResponse r, HttpCall(Globals().socket, {"GET", target}));
  WipeOnExit wipe_body(r.body);  // it holds the value (base64)
  SK_RETURN_IF_ERROR(StatusFromResponse(r));
  Json j = Json::parse(r.body, nullptr, false);
  if (!j.is_object() || !j.contains("value_b64") || !j["value_b64"].is_string()) {
    return Status(Code::kUnavailable, "bad_response", "sealkeepd's answer has no value_b64");
  }
  if (version != nullptr) *version = U64(j, "version");
  std::string& b64 = j["value_b64"].get_ref<std::string&>();
  auto bytes = Base64Decode(b64);
  SecureWipe(b64.data(), b64.size());
  if (!bytes) return Status(Code::kUnavailable, "bad_response", "sealkeepd's value_b64 is not base64");
  SecretBytes value = SecretBytes::CopyFrom(*bytes);
  SecureWipe(bytes->data(), bytes->size());
  return value;
}

}  // namespace sk::cli
