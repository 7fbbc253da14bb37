// The HTTP/1.1 wire format of the API's answers: one builder for every response head (a
// handler's answer, an error found before routing, a connection refused at a limit), so
// each carries the same headers: Server, Content-Type, X-Request-Id, Cache-Control:
// no-store, the answer's own headers (any holding CR, LF or a ':' in its name is dropped),
// Connection: close when the connection ends, and Content-Length, except on an answer that
// has no content (204, 304), which carries neither Content-Type nor Content-Length nor a body
// (RFC 9110 8.6: a server must not send Content-Length in a 204).
#pragma once

#include <string>

#include "agent/api/api.h"

namespace sk::api {

// 204 No Content and 304 Not Modified: answers that never have a body.
bool HasNoContent(unsigned status);

// Appends the status line and headers of `r` (its body not included) to `out`.
void AppendResponseHead(std::string& out, const ApiResponse& r, std::string_view request_id, bool keep_open);

// The whole answer in one string: for a refusal sent with one send(2) before a session exists.
std::string ResponseBytes(const ApiResponse& r, std::string_view request_id, bool keep_open);

}  // namespace sk::api
