// What every CLI command that talks to a running sealkeepd shares: one call to the agent
// at Globals().socket with the API's error answers turned into a Status (so into the
// CLI's exit codes), the pieces of a request (checked paths and names, escaped
// queries), and the output helpers (aligned tables, times, one-line summaries).
//
// Nothing here prints or keeps a secret value: values travel in request and response
// bodies only, which the commands wipe (http_client.h).
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "crypto/secret_bytes.h"
#include "tools/cli/http_client.h"

namespace sk::cli {

using Json = nlohmann::json;

// The Code an error answer maps back to (docs/api.md's error table): 400 invalid
// argument, 401 unauthenticated, 403 forbidden, 404 not found, 409 conflict, 410 expired,
// 413/431 too large, 429 resource exhausted, 500 corruption for a stored version that
// does not verify (seal_invalid, chain_broken, content_mismatch, key_retired) else
// internal, 503 unavailable for store_failed/audit_unavailable/anchor_unavailable else
// sealed, 405/501 unimplemented; any other 4xx invalid argument, 5xx internal.
Code CodeForHttpStatus(int http_status, std::string_view error_code);

// An answer as a Status: OK for 2xx; otherwise reason = the error's "code" and message =
// its "message" (or the HTTP status and reason phrase when the body is not an API error).
Status StatusFromResponse(const HttpResponse& response);

// Calls the agent. A transport failure ends the program through Fail() (exit 6). An error
// answer runs `on_error` (if set: to print details such as a refused restore's failures),
// then ends the program: with --json the server's body is printed as is, else Fail().
using ErrorHook = std::function<void(const HttpResponse&, const Json& error)>;
HttpResponse CallOrFail(const HttpRequest& request, const ErrorHook& on_error = {});

// An ErrorHook for a refused snapshot restore or release abort (restore_refused): the
// error line, then one line per target that does not verify, on stderr, then exit 4.
// Other errors (and --json) are left to CallOrFail.
void PrintRestoreRefusal(const HttpResponse& response, const Json& error);

// A 2xx answer's body as a JSON object; Fail()s with bad_response (exit 6) otherwise.
Json ParseBody(const HttpResponse& response);
// Prints the answer's body as is, with a newline: the --json output of every command.
void PrintBody(const HttpResponse& response);

// Request pieces. Paths, prefixes and snapshot names are checked as the agent checks them
// (bad_path, bad_name: exit 2) so they go into a URL as they are.
std::string SecretTarget(const std::string& path, std::string_view suffix = "");
std::string CheckedSnapshotName(const std::string& name);
std::string CheckedPrefix(const std::string& prefix);
std::string QueryEscape(std::string_view s);

// Reads a whole secret input (a value, a transaction file) into locked memory: `file`, or
// stdin when it is "" or "-". At most `cap` bytes (value_too_large, exit 2); a missing or
// unreadable file is bad_input (exit 2). Nothing read is ever copied outside SecretBytes.
SecretBytes ReadSecretInput(const std::string& file, std::size_t cap = 64 * 1024 * 1024);

// The value of `path` from the agent, in locked memory: the head, or what `query` names
// ("stage=pending", "version=3"; without "?"). `version` (if set) receives the version
// read. Errors as the agent answers them (transport failures included: no Fail()).
Result<SecretBytes> FetchValue(const std::string& path, std::string_view query = {},
                               std::uint64_t* version = nullptr);

// Output helpers.
std::string FormatTimeMs(std::uint64_t ms);         // "2024-05-01 12:00:00Z"; "-" for 0
std::string ShortTxn(const Json& answer);           // "1a2b3c4d.." from "txn_id"
std::uint64_t U64(const Json& j, const char* key);  // 0 when absent or not a number
std::string Str(const Json& j, const char* key);    // "" when absent or not a string
// Prints rows with columns padded to their widest cell, each line after `indent`; the
// first row is the header.
void PrintTable(const std::vector<std::vector<std::string>>& rows, std::FILE* out = stdout,
                const char* indent = "");

}  // namespace sk::cli
