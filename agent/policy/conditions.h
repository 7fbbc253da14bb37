// Conditions a binding may put on a request beyond "who": the secret's labels, the time
// of day, and subject attributes other than identity. A binding applies only when every
// condition it has holds. Each condition is immutable after parsing and thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "agent/policy/subject.h"

namespace sk::policy {

// key=value strings attached to a secret.
using Labels = std::map<std::string, std::string, std::less<>>;

// Every listed key must be present with one of its listed values. Unknown labels (the
// daemon passes none, e.g. the secret does not exist) never satisfy it.
struct LabelCondition {
  std::vector<std::pair<std::string, std::vector<std::string>>> required;
  bool Holds(const Labels* labels) const;
};

// A daily window [from, to) in minutes after midnight, in UTC or the host's local time
// zone (TZ / /etc/localtime, as localtime_r sees it). from > to wraps past midnight
// ("22:00"-"06:00"). `days` (bit 0 = Monday ... bit 6 = Sunday; 0x7F = every day) is the
// weekday of the instant itself in the same zone, so with a wrapping window the hours
// after midnight belong to the next day.
struct TimeWindow {
  enum class Zone : std::uint8_t { kUtc, kLocal };
  int from_minute = 0;
  int to_minute = 0;
  Zone zone = Zone::kUtc;
  std::uint8_t days = 0x7F;
  bool Holds(std::chrono::system_clock::time_point t) const;
  std::string Describe() const;  // "08:00-18:00 utc mon,tue"
};

// Subject attributes beyond identity: membership of every group in `groups` (names),
// and an executable under one of `exe_prefixes` (ExeUnderPrefix). An empty list is no
// constraint.
struct SubjectCondition {
  std::vector<std::string> groups;
  std::vector<std::string> exe_prefixes;
  bool Holds(const Subject& s) const;
};

struct Conditions {
  std::optional<LabelCondition> labels;
  std::optional<TimeWindow> time;
  std::optional<SubjectCondition> subject;
  bool empty() const { return !labels && !time && !subject; }
};

// True when `exe` is `prefix` or lies under it as a folder: the prefix matches on a path
// boundary, so "/usr/bin" and "/usr/bin/" both cover "/usr/bin/curl" but not
// "/usr/binx/curl". An empty prefix covers nothing.
bool ExeUnderPrefix(std::string_view exe, std::string_view prefix);

// Parses "HH:MM" (00:00-23:59; "24:00" too, meaning end of day) into minutes.
std::optional<int> ParseClock(std::string_view text);

}  // namespace sk::policy
