#include "tests/api/history_checker.h"

#include <algorithm>
#include <limits>
#include <set>
#include <unordered_map>

namespace sk::testing {
namespace {

using Kind = HistoryOp::Kind;
using Outcome = HistoryOp::Outcome;

constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::max();

struct Where {
  std::string path;
  std::uint64_t version = 0;
};

// One write as stored (or not), with its invocation.
struct Placed {
  const HistoryOp* op;
  const HistoryWrite* w;
  std::optional<Where> at;  // where the final state holds its value
};

}  // namespace

std::vector<Violation> CheckHistory(const std::vector<HistoryOp>& ops, const FinalState& final_state) {
  std::vector<Violation> out;
  auto add = [&](const char* kind, std::string detail) {
    if (out.size() < 200) out.push_back({kind, std::move(detail)});
  };

  // The final state: contiguous versions, each value once.
  std::unordered_map<std::string, Where> stored;
  for (const auto& [path, versions] : final_state) {
    for (std::size_t i = 0; i < versions.size(); ++i) {
      if (versions[i].version != i + 1) {
        add("version_gap", path + ": position " + std::to_string(i + 1) + " holds version " +
                               std::to_string(versions[i].version));
      }
      auto [it, fresh] = stored.emplace(versions[i].value, Where{path, versions[i].version});
      if (!fresh) {
        add("duplicate_value", "value " + versions[i].value + " is stored at " + it->second.path + " v" +
                                   std::to_string(it->second.version) + " and " + path + " v" +
                                   std::to_string(versions[i].version));
      }
    }
  }

  // Every write, placed.
  std::vector<Placed> placed;
  placed.reserve(ops.size() * 2);
  std::set<std::string> written;
  for (const HistoryOp& op : ops) {
    for (const HistoryWrite& w : op.writes) {
      written.insert(w.value);
      Placed p{&op, &w, std::nullopt};
      if (auto it = stored.find(w.value); it != stored.end()) p.at = it->second;
      placed.push_back(p);
    }
  }
  for (const auto& [value, where] : stored) {
    if (written.count(value) == 0)
      add("phantom_value", where.path + " v" + std::to_string(where.version) + " holds " + value +
                               ", which no invocation wrote");
  }

  // Outcomes, transactions, compare-and-set.
  for (const HistoryOp& op : ops) {
    if (op.kind == Kind::kGet) continue;
    std::size_t present = 0;
    for (const HistoryWrite& w : op.writes) {
      auto it = stored.find(w.value);
      const bool here = it != stored.end();
      present += here ? 1 : 0;
      if (here && it->second.path != w.path) {
        add("wrong_version",
            op.label + ": " + w.value + " written to " + w.path + " is stored at " + it->second.path);
      }
      if (op.outcome == Outcome::kOk) {
        if (!here) {
          add("lost_write", op.label + ": acknowledged " + w.path + " v" + std::to_string(w.version) + " (" +
                                w.value + ") is not stored");
        } else if (w.version != 0 && it->second.version != w.version) {
          add("wrong_version", op.label + ": acknowledged as " + w.path + " v" + std::to_string(w.version) +
                                   ", stored as v" + std::to_string(it->second.version));
        }
      }
      if (here && w.cas && it->second.version != *w.cas + 1) {
        add("cas_violation", op.label + ": expected head v" + std::to_string(*w.cas) + " of " + w.path +
                                 ", stored as v" + std::to_string(it->second.version));
      }
    }
    if (op.outcome == Outcome::kFailed && present > 0) {
      add("failed_write_applied", op.label + ": told it failed, yet " + std::to_string(present) + " of " +
                                      std::to_string(op.writes.size()) + " writes are stored");
    }
    if (present != 0 && present != op.writes.size()) {
      add("partial_txn", op.label + ": " + std::to_string(present) + " of " +
                             std::to_string(op.writes.size()) + " writes are stored");
    }
  }

  // Real-time order per path: acknowledged before invoked means a lower version.
  std::map<std::string, std::vector<const Placed*>> by_path;
  for (const Placed& p : placed) {
    if (p.at) by_path[p.at->path].push_back(&p);
  }
  for (auto& [path, list] : by_path) {
    std::sort(list.begin(), list.end(),
              [](const Placed* a, const Placed* b) { return a->at->version < b->at->version; });
    // For each version, the latest invocation among the versions above it must not come
    // after... equivalently: no later version's op completed before an earlier version's op
    // was invoked. Scan from the top keeping the earliest completion seen above.
    std::int64_t min_complete_above = kNever;
    const Placed* who = nullptr;
    for (auto it = list.rbegin(); it != list.rend(); ++it) {
      const Placed* p = *it;
      if (min_complete_above < p->op->invoke_ns) {
        add("order_violation", path + ": " + who->op->label + " (v" + std::to_string(who->at->version) +
                                   ") was acknowledged before " + p->op->label + " (v" +
                                   std::to_string(p->at->version) + ") was invoked");
      }
      const std::int64_t done = p->op->outcome == Outcome::kOk ? p->op->complete_ns : kNever;
      if (done < min_complete_above) {
        min_complete_above = done;
        who = p;
      }
    }
  }

  // Reads.
  std::unordered_map<std::string, const Placed*> writer;
  for (const Placed& p : placed) writer.emplace(p.w->value, &p);
  for (const HistoryOp& op : ops) {
    if (op.kind != Kind::kGet || op.outcome != Outcome::kOk) continue;
    // The highest version of the path acknowledged before the read began.
    std::uint64_t floor = 0;
    std::string floor_by;
    auto list = by_path.find(op.read_path);
    if (list != by_path.end()) {
      for (const Placed* p : list->second) {
        if (p->op->outcome == Outcome::kOk && p->op->complete_ns < op.invoke_ns && p->at->version > floor) {
          floor = p->at->version;
          floor_by = p->op->label;
        }
      }
    }
    if (op.read_none) {
      if (floor > 0)
        add("stale_read", op.label + ": " + op.read_path + " read as absent after " + floor_by + " wrote v" +
                              std::to_string(floor));
      continue;
    }
    auto path = final_state.find(op.read_path);
    if (path == final_state.end() || op.read_version == 0 || op.read_version > path->second.size() ||
        path->second[op.read_version - 1].value != op.read_value) {
      add("phantom_read", op.label + ": " + op.read_path + " v" + std::to_string(op.read_version) +
                              " read as " + op.read_value + ", which is not what that version holds");
      continue;
    }
    if (op.read_version < floor) {
      add("stale_read", op.label + ": read " + op.read_path + " v" + std::to_string(op.read_version) +
                            " after " + floor_by + " had written v" + std::to_string(floor));
    }
    if (auto w = writer.find(op.read_value); w != writer.end() && w->second->op->invoke_ns > op.complete_ns) {
      add("read_from_future",
          op.label + ": read " + op.read_value + " before " + w->second->op->label + " wrote it");
    }
  }
  return out;
}

}  // namespace sk::testing
