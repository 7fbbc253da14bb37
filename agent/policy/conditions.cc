#include "agent/policy/conditions.h"

#include <ctime>

namespace sk::policy {
namespace {

constexpr const char* kDayNames[7] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};

std::string Clock(int minutes) {
  std::string out(5, ':');
  out[0] = static_cast<char>('0' + minutes / 600);
  out[1] = static_cast<char>('0' + minutes / 60 % 10);
  out[3] = static_cast<char>('0' + minutes % 60 / 10);
  out[4] = static_cast<char>('0' + minutes % 10);
  return out;
}

}  // namespace

bool LabelCondition::Holds(const Labels* labels) const {
  if (labels == nullptr) return false;
  for (const auto& [key, values] : required) {
    auto it = labels->find(key);
    if (it == labels->end()) return false;
    bool any = false;
    for (const std::string& v : values) any = any || v == it->second;
    if (!any) return false;
  }
  return true;
}

bool TimeWindow::Holds(std::chrono::system_clock::time_point t) const {
  std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  if ((zone == Zone::kUtc ? ::gmtime_r(&secs, &tm) : ::localtime_r(&secs, &tm)) == nullptr) return false;
  int minute = tm.tm_hour * 60 + tm.tm_min;
  int weekday = (tm.tm_wday + 6) % 7;  // tm_wday: 0 = Sunday; ours: 0 = Monday
  if ((days & (1U << static_cast<unsigned>(weekday))) == 0) return false;
  if (from_minute <= to_minute) return minute >= from_minute && minute < to_minute;
  return minute >= from_minute || minute < to_minute;  // wraps past midnight
}

std::string TimeWindow::Describe() const {
  std::string out = Clock(from_minute) + "-" + Clock(to_minute) + (zone == Zone::kUtc ? " utc" : " local");
  if (days != 0x7F) {
    out += ' ';
    bool first = true;
    for (unsigned d = 0; d < 7; ++d) {
      if ((days & (1U << d)) == 0) continue;
      if (!first) out += ',';
      out += kDayNames[d];
      first = false;
    }
  }
  return out;
}

bool SubjectCondition::Holds(const Subject& s) const {
  for (const std::string& g : groups) {
    if (!s.HasGroup(g)) return false;
  }
  if (exe_prefixes.empty()) return true;
  if (s.exe.empty()) return false;
  for (const std::string& p : exe_prefixes) {
    if (ExeUnderPrefix(s.exe, p)) return true;
  }
  return false;
}

bool ExeUnderPrefix(std::string_view exe, std::string_view prefix) {
  if (prefix.empty() || exe.size() < prefix.size() || exe.compare(0, prefix.size(), prefix) != 0)
    return false;
  // On a path boundary only: "/usr/bin" covers "/usr/bin/x" and itself, never "/usr/binx/y".
  return prefix.back() == '/' || exe.size() == prefix.size() || exe[prefix.size()] == '/';
}

std::optional<int> ParseClock(std::string_view text) {
  if (text.size() != 5 || text[2] != ':') return std::nullopt;
  auto digit = [&](std::size_t i) { return text[i] >= '0' && text[i] <= '9' ? text[i] - '0' : -1; };
  int h1 = digit(0), h2 = digit(1), m1 = digit(3), m2 = digit(4);
  if (h1 < 0 || h2 < 0 || m1 < 0 || m2 < 0) return std::nullopt;
  int h = h1 * 10 + h2;
  int m = m1 * 10 + m2;
  if (m > 59 || h > 24 || (h == 24 && m != 0)) return std::nullopt;
  return h * 60 + m;
}

}  // namespace sk::policy
