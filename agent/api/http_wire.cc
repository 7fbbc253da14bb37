#include "agent/api/http_wire.h"

#include <boost/beast/http/status.hpp>

namespace sk::api {

bool HasNoContent(unsigned status) { return status == 204 || status == 304; }

void AppendResponseHead(std::string& out, const ApiResponse& r, std::string_view request_id, bool keep_open) {
  namespace http = boost::beast::http;
  const bool no_content = HasNoContent(r.status);
  out += "HTTP/1.1 ";
  out += std::to_string(r.status);
  out += ' ';
  out += http::obsolete_reason(static_cast<http::status>(r.status));
  out += "\r\nServer: sealkeepd";
  if (!no_content) {
    out += "\r\nContent-Type: ";
    out += r.content_type;
  }
  out += "\r\nX-Request-Id: ";
  out += request_id;
  out += "\r\nCache-Control: no-store\r\n";
  for (const auto& [k, v] : r.headers) {
    if (k.find_first_of("\r\n:") != std::string::npos || v.find_first_of("\r\n") != std::string::npos)
      continue;
    out += k;
    out += ": ";
    out += v;
    out += "\r\n";
  }
  if (!keep_open) out += "Connection: close\r\n";
  if (!no_content) {
    out += "Content-Length: ";
    out += std::to_string(r.body.size());
    out += "\r\n";
  }
  out += "\r\n";
}

std::string ResponseBytes(const ApiResponse& r, std::string_view request_id, bool keep_open) {
  std::string out;
  AppendResponseHead(out, r, request_id, keep_open);
  if (!HasNoContent(r.status)) out += r.body;
  return out;
}

}  // namespace sk::api
