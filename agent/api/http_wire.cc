#include "agent/api/http_wire.h"

#include <boost/beast/http/status.hpp>

namespace sk::api {

void AppendResponseHead(std::string& out, const ApiResponse& r, std::string_view request_id, bool keep_open) {
  namespace http = boost::beast::http;
  out += "HTTP/1.1 ";
  out += std::to_string(r.status);
  out += ' ';
  out += http::obsolete_reason(static_cast<http::status>(r.status));
  out += "\r\nServer: sealkeepd\r\nContent-Type: ";
  out += r.content_type;
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
  out += "Content-Length: ";
  out += std::to_string(r.body.size());
  out += "\r\n\r\n";
}

std::string ResponseBytes(const ApiResponse& r, std::string_view request_id, bool keep_open) {
  std::string out;
  AppendResponseHead(out, r, request_id, keep_open);
  out += r.body;
  return out;
}

}  // namespace sk::api
