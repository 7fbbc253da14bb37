// Staged rotation's read side: where a path's rotation stands, and the lifetimes of every
// head (expiry, rotation schedules) for /metrics and alerts. The writes are ops (ops.cc).
#include <algorithm>
#include <charconv>

#include "agent/secrets/path.h"
#include "agent/secrets/service_impl.h"

namespace sk::secrets {

namespace internal {
namespace {

// The schedule a head's canonical labels carry, in seconds (0: none).
std::uint64_t EverySeconds(const std::string& canonical_labels) {
  if (canonical_labels.find(kRotationLabel) == std::string::npos) return 0;  // the common case: no parse
  Labels labels = ParseLabels(canonical_labels);
  auto it = labels.find(std::string(kRotationLabel));
  if (it == labels.end()) return 0;
  return ParseRotationEvery(it->second).value_or(0);
}

}  // namespace

Result<RotationState> ServiceImpl::RotationStatus(const std::string& path) {
  SK_RETURN_IF_ERROR(Fenced());
  SK_RETURN_IF_ERROR(ValidatePath(path));
  std::shared_lock lock(index_mu_);
  const PathState* s = index_.Find(path);
  if (s == nullptr || s->fields.head == 0) return NotFound(path + " does not exist");
  RotationState r;
  const VersionInfo& head = s->versions[s->fields.head - 1];
  r.current = s->fields.head;
  r.current_created_ms = head.created_ms;
  r.current_expires_ms = head.expires_ms;
  r.pending = s->fields.pending;
  if (r.pending != 0) r.pending_created_ms = s->versions[r.pending - 1].created_ms;
  r.previous = StageVersion(*s, Stage::kPrevious);
  r.every_s = EverySeconds(s->fields.labels);
  if (r.every_s != 0) r.due_ms = head.created_ms + r.every_s * 1000;
  r.labels = ParseLabels(s->fields.labels);
  return r;
}

LifetimeReport ServiceImpl::Lifetimes(std::uint64_t now_ms, std::size_t max_items) {
  constexpr std::uint64_t kDay = 86'400'000;
  LifetimeReport r;
  {
    std::shared_lock lock(index_mu_);
    for (std::string_view path : index_.ordered()) {
      const PathState* s = index_.Find(path);
      if (s == nullptr || s->fields.head == 0) continue;
      const VersionInfo& head = s->versions[s->fields.head - 1];
      if (head.state != VersionState::kLive) continue;
      if (s->fields.pending != 0) ++r.rotations_pending;
      if (head.expires_ms != 0) {
        if (head.expires_ms <= now_ms) {
          ++r.expired;
        } else {
          const std::uint64_t left = head.expires_ms - now_ms;
          if (left <= kDay) ++r.within_1d;
          if (left <= 7 * kDay) ++r.within_7d;
          if (left <= 30 * kDay) ++r.within_30d;
        }
        if (max_items != 0 && head.expires_ms > now_ms && head.expires_ms <= now_ms + 30 * kDay) {
          r.expiring.push_back({std::string(path), s->fields.head, head.expires_ms});
        }
      }
      if (std::uint64_t every = EverySeconds(s->fields.labels); every != 0 && s->fields.pending == 0) {
        const std::uint64_t due = head.created_ms + every * 1000;
        if (due <= now_ms) {
          ++r.rotations_due;
          if (max_items != 0) r.due.push_back({std::string(path), s->fields.head, due});
        }
      }
    }
  }
  auto soonest = [](const LifetimeItem& a, const LifetimeItem& b) {
    return a.at_ms != b.at_ms ? a.at_ms < b.at_ms : a.path < b.path;
  };
  for (auto* items : {&r.expiring, &r.due}) {
    if (items->size() > max_items) {
      std::partial_sort(items->begin(), items->begin() + static_cast<std::ptrdiff_t>(max_items), items->end(),
                        soonest);
      items->resize(max_items);
    } else {
      std::sort(items->begin(), items->end(), soonest);
    }
  }
  return r;
}

}  // namespace internal
}  // namespace sk::secrets
