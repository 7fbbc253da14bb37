// Transactions: validation, idempotency, and each op's effect inside the committer.
#include <algorithm>
#include <atomic>
#include <sstream>

#include "agent/secrets/keys.h"
#include "agent/secrets/path.h"
#include "agent/secrets/service_impl.h"

namespace sk::secrets {

std::string_view OpTypeName(Op::Type t) {
  switch (t) {
    case Op::Type::kPut:
      return "put";
    case Op::Type::kDelete:
      return "delete";
    case Op::Type::kUndelete:
      return "undelete";
    case Op::Type::kDestroy:
      return "destroy";
    case Op::Type::kRollback:
      return "rollback";
    case Op::Type::kCheckVersion:
      return "check-version";
    case Op::Type::kFloor:
      return "floor";
    case Op::Type::kStage:
      return "stage";
    case Op::Type::kPromote:
      return "promote";
    case Op::Type::kAbort:
      return "abort";
  }
  return "unknown";
}

Result<TxnResult> Put(SecretService& s, const std::string& path, ByteView value, const Actor& actor,
                      std::optional<std::uint64_t> cas) {
  std::vector<Op> ops(1);
  ops[0].type = Op::Type::kPut;
  ops[0].path = path;
  ops[0].value = SecretBytes::CopyFrom(value);
  ops[0].cas = cas;
  return s.Transact(std::move(ops), "", actor);
}

Result<TxnResult> Rollback(SecretService& s, const std::string& path, std::uint64_t to, const Actor& actor,
                           std::optional<std::uint64_t> cas) {
  std::vector<Op> ops(1);
  ops[0].type = Op::Type::kRollback;
  ops[0].path = path;
  ops[0].version = to;
  ops[0].cas = cas;
  return s.Transact(std::move(ops), "", actor);
}

namespace internal {
namespace {

constexpr std::size_t kMaxOps = 1000;
constexpr std::size_t kMaxLabels = 32;
constexpr std::size_t kMaxIdempotencyKey = 128;
constexpr std::size_t kMaxNote = 1024;

bool LabelKeyChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
         c == '-';
}

Status ValidateLabels(const Labels& labels) {
  if (labels.size() > kMaxLabels) return InvalidArgument("at most 32 labels", "bad_labels");
  for (const auto& [k, v] : labels) {
    if (k.empty() || k.size() > 64 || !std::all_of(k.begin(), k.end(), LabelKeyChar)) {
      return InvalidArgument("a label key is 1-64 characters of [A-Za-z0-9._-]", "bad_labels");
    }
    if (v.size() > 256 || !std::all_of(v.begin(), v.end(), [](char c) { return c >= 0x20 && c < 0x7f; })) {
      return InvalidArgument("a label value is at most 256 printable ASCII characters", "bad_labels");
    }
  }
  return OkStatus();
}

Status ValidateNote(const std::string& note) {
  if (note.size() > kMaxNote ||
      !std::all_of(note.begin(), note.end(), [](char c) { return c >= 0x20 && c < 0x7f; })) {
    return InvalidArgument("a note or reason is at most 1024 printable ASCII characters", "bad_request");
  }
  return OkStatus();
}

Status ValidateOp(const Op& op, const ServiceOptions& options) {
  SK_RETURN_IF_ERROR(ValidatePath(op.path));
  switch (op.type) {
    case Op::Type::kStage:
      SK_RETURN_IF_ERROR(ValidateNote(op.note));
      [[fallthrough]];
    case Op::Type::kPut:
      if (op.value.size() > options.max_value_bytes) {
        return Status(
            Code::kTooLarge, "value_too_large",
            "the value is larger than the limit of " + std::to_string(options.max_value_bytes) + " bytes");
      }
      if (op.expires_in_s > 100ULL * 365 * 24 * 3600)
        return InvalidArgument("expires_in is too large", "bad_request");
      return ValidateLabels(op.labels);
    case Op::Type::kRollback:
      if (!op.version || *op.version == 0)
        return InvalidArgument("rollback needs a target version >= 1", "bad_request");
      return OkStatus();
    case Op::Type::kCheckVersion:
      if (!op.version && !op.cas) return InvalidArgument("check-version needs a version", "bad_request");
      return OkStatus();
    case Op::Type::kFloor:
      if (op.floor == 0) return InvalidArgument("a floor is a version >= 1", "bad_request");
      return OkStatus();
    case Op::Type::kPromote:
    case Op::Type::kAbort:
      if (!op.version || *op.version == 0)
        return InvalidArgument("finishing or aborting a rotation names its pending version", "bad_request");
      return ValidateNote(op.note);
    default:
      return OkStatus();
  }
}

// The stored first response of an idempotent transaction: "txn seq\n" then "op path version\n"...
std::string EncodeResult(const TxnResult& r) {
  std::ostringstream out;
  out << r.txn_id << ' ' << r.seq << '\n';
  for (const OpResult& o : r.results) out << o.op << ' ' << o.path << ' ' << o.version << '\n';
  return out.str();
}

TxnResult DecodeResult(const std::string& s) {
  TxnResult r;
  std::istringstream in(s);
  in >> r.txn_id >> r.seq;
  OpResult o;
  while (in >> o.op >> o.path >> o.version) r.results.push_back(o);
  return r;
}

Status CasCheck(const Op& op, const PathFields& f) {
  if (op.cas && *op.cas != f.head) {
    return Conflict("the head of " + op.path + " is version " + std::to_string(f.head) + ", the caller saw " +
                        std::to_string(*op.cas),
                    "cas_mismatch");
  }
  return OkStatus();
}

Status NoVersion(const std::string& path, std::uint64_t v) {
  return NotFound(v == 0 ? path + " does not exist" : path + " has no version " + std::to_string(v));
}

Status RotationInProgress(const std::string& path, const PathFields& f, std::string_view what) {
  return Conflict(std::string(what) + ": " + path + " has a rotation in progress (pending version " +
                      std::to_string(f.pending) + "); finish or abort it first",
                  "rotation_in_progress");
}

}  // namespace

VersionCheck ServiceImpl::MakeCheck(const std::string& path, std::uint64_t version, const VersionInfo& info,
                                    const PathFields& fields) const {
  VersionCheck c;
  c.path = path;
  c.version = version;
  c.info = info;
  c.fields = fields;
  c.global_ok_from = index_.global_ok_from;
  return c;
}

Result<std::uint64_t> ServiceImpl::WriteVersion(Batch& b, const std::string& path, ByteView value,
                                                journal::Kind kind, std::uint64_t from_version,
                                                const std::string& labels,
                                                std::optional<std::uint32_t> max_versions,
                                                std::uint64_t expires_ms, const std::string& snapshot,
                                                const Actor& actor, const std::string& note) {
  // Above every version written, a pending or aborted one included.
  std::uint64_t version = b.View(path).fields().top + 1;
  SK_ASSIGN_OR_RETURN(SealedValue sealed, SealValue(*backend_, store_id_, path, version, value));
  journal::Entry e;
  e.kind = kind;
  e.path = path;
  e.version = version;
  e.from_version = from_version;
  e.key_generation = WrappedGeneration(sealed.wrapped_dek);
  e.expires_ms = expires_ms;
  e.actor = actor.text.substr(0, journal::kMaxActorBytes);
  e.content_digest = Sha256(sealed.ciphertext);
  e.dek_commit = journal::DekCommit(sealed.dek);
  e.detail.labels = labels;
  e.detail.max_versions = max_versions;
  e.detail.snapshot = snapshot;
  e.detail.note = note;
  // The data key's second wrap, to the recovery key, in the version's own row.
  Bytes recovery_wrap;
  if (auto recovery = recovery_sealer()) {
    SK_ASSIGN_OR_RETURN(recovery_wrap, recovery->Seal(sealed.dek, DekAad(store_id_, path, version)));
  }
  SK_RETURN_IF_ERROR(b.writer().PutVersion(
      path, version, {sealed.ciphertext, sealed.wrapped_dek, false, std::move(recovery_wrap)}));
  SK_RETURN_IF_ERROR(b.Append(std::move(e)).status());
  return version;
}

Result<OpenedVersion> ServiceImpl::CheckForRollback(Batch& b, const std::string& path,
                                                    std::uint64_t version) {
  PathView view = b.View(path);
  PathFields fields = view.fields();
  std::optional<VersionInfo> info = view.version(version);
  if (!info) return NoVersion(path, version);
  // The head must still agree with the hardware anchor.
  SK_ASSIGN_OR_RETURN(hsm::Anchor hw, backend_->ReadAnchor());
  {
    std::lock_guard lock(anchor_mu_);
    if (hw.seq != anchor_.seq || hw.head_hash != anchor_.head_hash) {
      return RefusalStatus(
          {"replay_detected", "the hardware anchor moved behind sealkeep's back (it records seq " +
                                  std::to_string(hw.seq) + ")"});
    }
  }
  VersionCheck c = MakeCheck(path, version, *info, fields);
  SK_ASSIGN_OR_RETURN(c.disk_chain_ok_from, PathChainOkFrom(b.writer(), b.sealer(), path, fields));
  CheckContext ctx{b.writer(), b.sealer(), *backend_, store_id_, &cache_};
  SK_ASSIGN_OR_RETURN(OpenedVersion opened, CheckVersion(ctx, c, true));
  if (opened.entry.expires_ms != 0 && opened.entry.expires_ms <= b.now_ms()) {
    return RefusalStatus({"expired", path + " version " + std::to_string(version) + " has expired"});
  }
  return opened;
}

Status ServiceImpl::Prune(Batch& b, const std::string& path, const Actor& actor, const OpGuard& guard,
                          const std::string& what) {
  PathView view = b.View(path);
  PathFields f = view.fields();
  std::uint32_t max = f.max_versions != 0 ? f.max_versions : options_.default_max_versions;
  if (max == 0) return OkStatus();
  std::uint64_t kept = 0;
  // Down to the oldest version that is not destroyed: an explicitly destroyed version
  // may sit between live ones, so a destroyed version does not end the walk.
  for (std::uint64_t v = f.head; v >= view.low() && v >= 1; --v) {
    std::optional<VersionInfo> info = view.version(v);
    if (!info || info->state == VersionState::kDestroyed) continue;
    if (++kept <= max) continue;
    if (!guard.may_prune) {
      return Status(Code::kForbidden, "forbidden",
                    what + " would destroy version " + std::to_string(v) + " (" + path + " keeps " +
                        std::to_string(max) + " versions): that needs destroy on " + path);
    }
    SK_RETURN_IF_ERROR(b.writer().EraseVersion(path, v));
    journal::Entry e;
    e.kind = journal::Kind::kDestroy;
    e.path = path;
    e.version = v;
    e.actor = actor.text.substr(0, journal::kMaxActorBytes);
    e.detail.note = "pruned";
    SK_RETURN_IF_ERROR(b.Append(std::move(e)).status());
    cache_.Erase(path, v);
  }
  return OkStatus();
}

Status ServiceImpl::CheckLabels(const OpGuard& guard, const PathFields& head, const std::string& written) {
  if (!guard.labels) return OkStatus();
  Labels current = ParseLabels(head.labels);
  return guard.labels(head.head > 0 ? &current : nullptr, ParseLabels(written));
}

namespace {

// How many versions a max_versions setting keeps (0: the service default, whose 0 is all).
std::uint64_t Retention(std::uint32_t setting, std::uint32_t service_default) {
  std::uint32_t n = setting != 0 ? setting : service_default;
  return n == 0 ? UINT64_MAX : n;
}

// One op's effect. `out` receives its result.
class OpApplier {
 public:
  OpApplier(ServiceImpl& svc, Batch& b, const Actor& actor) : svc_(svc), b_(b), actor_(actor) {}

  Status Apply(const Op& op, OpResult& out) {
    out.op = std::string(OpTypeName(op.type));
    out.path = op.path;
    PathView view = b_.View(op.path);
    PathFields f = view.fields();
    SK_RETURN_IF_ERROR(CasCheck(op, f));
    switch (op.type) {
      case Op::Type::kPut:
        if (f.pending != 0) return RotationInProgress(op.path, f, "a put");
        return Put(op, f, out);
      case Op::Type::kStage:
        return Stage(op, f, out);
      case Op::Type::kPromote:
      case Op::Type::kAbort:
        return EndRotation(op, f, out);
      case Op::Type::kDelete:
      case Op::Type::kUndelete:
      case Op::Type::kDestroy:
        return ChangeState(op, view, f, out);
      case Op::Type::kRollback:
        if (f.pending != 0) return RotationInProgress(op.path, f, "a rollback");
        return DoRollback(op, f, out);
      case Op::Type::kCheckVersion: {
        std::uint64_t want = op.version ? *op.version : *op.cas;
        out.version = f.head;
        if (f.head != want) {
          return Conflict("the head of " + op.path + " is version " + std::to_string(f.head) + ", expected " +
                              std::to_string(want),
                          "cas_mismatch");
        }
        return OkStatus();
      }
      case Op::Type::kFloor:
        return Floor(op, f, out);
    }
    return Internal("unknown op");
  }

 private:
  Status Put(const Op& op, const PathFields& f, OpResult& out) {
    std::string labels = op.labels.empty() ? f.labels : CanonicalLabels(op.labels);
    SK_RETURN_IF_ERROR(ServiceImpl::CheckLabels(op.guard, f, labels));
    if (op.max_versions && !op.guard.may_lower_retention) {
      const std::uint64_t kept = Retention(f.max_versions, svc_.default_max_versions());
      const std::uint64_t asked = Retention(*op.max_versions, svc_.default_max_versions());
      if (asked < kept) {
        return Status(Code::kForbidden, "forbidden",
                      "lowering how many versions " + op.path + " keeps (from " +
                          (kept == UINT64_MAX ? std::string("all") : std::to_string(kept)) + " to " +
                          std::to_string(asked) + ") needs admin on " + op.path);
      }
    }
    std::uint64_t expires = op.expires_in_s == 0 ? 0 : b_.now_ms() + op.expires_in_s * 1000;
    SK_ASSIGN_OR_RETURN(out.version, svc_.WriteVersion(b_, op.path, op.value.Expose(), journal::Kind::kPut, 0,
                                                       labels, op.max_versions, expires, "", actor_));
    return svc_.Prune(b_, op.path, actor_, op.guard, "putting " + op.path);
  }

  Status ChangeState(const Op& op, const PathView& view, const PathFields& f, OpResult& out) {
    std::uint64_t v = op.version ? *op.version : f.head;
    std::optional<VersionInfo> info = view.version(v);
    if (v == 0 || !info) return NoVersion(op.path, v);
    if (f.pending != 0 && (v == f.pending || v == f.head)) {
      return RotationInProgress(op.path, f,
                                std::string(OpTypeName(op.type)) + " of version " + std::to_string(v));
    }
    out.version = v;
    journal::Kind kind = journal::Kind::kDelete;
    switch (op.type) {
      case Op::Type::kDelete:
        if (info->state == VersionState::kDestroyed)
          return Conflict(op.path + " version " + std::to_string(v) + " was destroyed", "destroyed");
        if (info->state == VersionState::kDeleted) return OkStatus();
        break;
      case Op::Type::kUndelete:
        if (info->state == VersionState::kDestroyed) {
          return Conflict(
              op.path + " version " + std::to_string(v) + " was destroyed and cannot be undeleted",
              "destroyed");
        }
        if (info->state == VersionState::kLive) return OkStatus();
        kind = journal::Kind::kUndelete;
        break;
      default:
        if (info->state == VersionState::kDestroyed) return OkStatus();
        kind = journal::Kind::kDestroy;
        SK_RETURN_IF_ERROR(b_.writer().EraseVersion(op.path, v));
        svc_.ForgetVersion(op.path, v);
        break;
    }
    journal::Entry e;
    e.kind = kind;
    e.path = op.path;
    e.version = v;
    e.actor = actor_.text.substr(0, journal::kMaxActorBytes);
    SK_RETURN_IF_ERROR(b_.Append(std::move(e)).status());
    return OkStatus();
  }

  Status DoRollback(const Op& op, const PathFields& f, OpResult& out) {
    SK_ASSIGN_OR_RETURN(OpenedVersion src, svc_.CheckForRollback(b_, op.path, *op.version));
    SK_RETURN_IF_ERROR(ServiceImpl::CheckLabels(op.guard, f, src.entry.detail.labels));
    SK_ASSIGN_OR_RETURN(
        out.version,
        svc_.WriteVersion(b_, op.path, src.value.Expose(), journal::Kind::kRollback, *op.version,
                          src.entry.detail.labels, std::nullopt, src.entry.expires_ms, "", actor_));
    return svc_.Prune(b_, op.path, actor_, op.guard, "rolling " + op.path + " back");
  }

  Status Stage(const Op& op, const PathFields& f, OpResult& out) {
    if (f.head == 0) return NoVersion(op.path, 0);
    if (f.pending != 0) return RotationInProgress(op.path, f, "a new rotation");
    std::optional<VersionInfo> head = b_.View(op.path).version(f.head);
    if (!head || head->state != VersionState::kLive) {
      return Conflict("the head of " + op.path + " (version " + std::to_string(f.head) + ") is " +
                          std::string(StateName(head ? head->state : VersionState::kDestroyed)) +
                          ": only a live secret rotates",
                      "not_live");
    }
    Labels carried = op.labels.empty() ? ParseLabels(f.labels) : op.labels;
    std::string& mark = carried[std::string(kRotationLabel)];
    if (!op.rotation_label.empty()) {
      mark = op.rotation_label;
    } else if (mark.empty()) {
      mark = "manual";
    }
    SK_RETURN_IF_ERROR(ValidateLabels(carried));
    const std::string labels = CanonicalLabels(carried);
    SK_RETURN_IF_ERROR(ServiceImpl::CheckLabels(op.guard, f, labels));
    // Finishing would prune past the path's retention: that needs `destroy`, and must be
    // refused now, before the rotator changes the target, not at finish.
    if (!op.guard.may_prune) SK_RETURN_IF_ERROR(FinishWouldNotPrune(op.path, f));
    std::uint64_t expires = op.expires_in_s == 0 ? 0 : b_.now_ms() + op.expires_in_s * 1000;
    SK_ASSIGN_OR_RETURN(
        out.version, svc_.WriteVersion(b_, op.path, op.value.Expose(), journal::Kind::kStage, f.head, labels,
                                       std::nullopt, expires, "", actor_, op.note));
    return OkStatus();
  }

  Status FinishWouldNotPrune(const std::string& path, const PathFields& f) {
    const std::uint64_t max = Retention(f.max_versions, svc_.default_max_versions());
    PathView view = b_.View(path);
    std::uint64_t kept = 1;  // the pending version, once current
    for (std::uint64_t v = f.head; v >= view.low() && v >= 1; --v) {
      std::optional<VersionInfo> info = view.version(v);
      if (!info || info->state == VersionState::kDestroyed) continue;
      if (++kept > max) {
        return Status(Code::kForbidden, "forbidden",
                      "finishing this rotation would destroy version " + std::to_string(v) + " (" + path +
                          " keeps " + std::to_string(max) + " versions): that needs destroy on " + path);
      }
    }
    return OkStatus();
  }

  Status EndRotation(const Op& op, const PathFields& f, OpResult& out) {
    const bool finish = op.type == Op::Type::kPromote;
    out.version = *op.version;
    if (f.pending == 0 || f.pending != *op.version) {
      return Conflict(op.path + " has " +
                          (f.pending == 0 ? std::string("no rotation in progress")
                                          : "pending version " + std::to_string(f.pending) + ", not " +
                                                std::to_string(*op.version)),
                      "no_pending_rotation");
    }
    std::optional<VersionInfo> pending = b_.View(op.path).version(f.pending);
    journal::Entry e;
    e.kind = finish ? journal::Kind::kPromote : journal::Kind::kAbort;
    e.path = op.path;
    e.version = f.pending;
    e.from_version = f.head;
    e.actor = actor_.text.substr(0, journal::kMaxActorBytes);
    e.detail.note = op.note;
    if (finish) {
      e.detail.labels = pending ? pending->labels : f.labels;
      SK_RETURN_IF_ERROR(ServiceImpl::CheckLabels(op.guard, f, e.detail.labels));
    } else {
      SK_RETURN_IF_ERROR(b_.writer().EraseVersion(op.path, f.pending));
      svc_.ForgetVersion(op.path, f.pending);
    }
    SK_RETURN_IF_ERROR(b_.Append(std::move(e)).status());
    if (!finish) return OkStatus();
    return svc_.Prune(b_, op.path, actor_, op.guard, "finishing the rotation of " + op.path);
  }

  Status Floor(const Op& op, const PathFields& f, OpResult& out) {
    out.version = op.floor;
    if (f.head == 0) return NoVersion(op.path, 0);
    if (op.floor > f.head) {
      return InvalidArgument(
          "the floor " + std::to_string(op.floor) + " is above the head version " + std::to_string(f.head),
          "floor_above_head");
    }
    if (op.floor < f.floor) {
      return Conflict("floors only go up: " + op.path + " already has floor " + std::to_string(f.floor),
                      "floor_decrease");
    }
    if (op.floor == f.floor) return OkStatus();
    journal::Entry e;
    e.kind = journal::Kind::kFloor;
    e.path = op.path;
    e.from_version = op.floor;
    e.actor = actor_.text.substr(0, journal::kMaxActorBytes);
    return b_.Append(std::move(e)).status();
  }

  ServiceImpl& svc_;
  Batch& b_;
  const Actor& actor_;
};

// A keyed digest of the request, so a retry can be told from a different request without
// storing anything from which a value could be guessed.
Digest RequestDigest(const SecretBytes& jk, const std::vector<Op>& ops) {
  Hmac h(jk);
  ByteWriter w;
  w.Raw(std::string_view("sealkeep idempotency v1"));
  w.U8(0);
  for (const Op& op : ops) {
    w.U8(static_cast<std::uint8_t>(op.type));
    w.Var16(op.path);
    Digest vd = op.digest_as.empty() ? Sha256(op.value.Expose()) : Sha256(AsBytes(op.digest_as));
    w.Raw(vd);
    w.U64(op.cas ? *op.cas + 1 : 0);
    w.U64(op.version ? *op.version + 1 : 0);
    w.U64(op.expires_in_s);
    w.Var32(AsBytes(CanonicalLabels(op.labels)));
    w.U64(op.max_versions ? *op.max_versions + 1ULL : 0ULL);
    w.U64(op.floor);
    if (!op.note.empty()) w.Var16(op.note);  // absent before notes existed: old digests still match
    if (!op.rotation_label.empty()) w.Var16(op.rotation_label);
  }
  return h.Compute(w.bytes());
}

// The key a request's idempotency record is stored under: the caller's own key, within its
// scope (Actor::idempotency_scope) when it has one, so two callers' equal keys are two
// records. Keyed by JK, so the store shows neither the keys nor whose they are.
std::string StoredIdempotencyKey(const SecretBytes& jk, const std::string& scope, const std::string& key) {
  if (scope.empty()) return key;
  Hmac h(jk);
  ByteWriter w;
  w.Raw(std::string_view("sealkeep idempotency scope v1"));
  w.U8(0);
  w.Var16(scope);
  w.Var16(key);
  return "s:" + HexEncode(h.Compute(w.bytes()));
}

std::atomic<std::uint64_t> g_last_idempotency_purge_ms{0};

}  // namespace

Status CheckFleetManaged(const std::string& fleet_prefix, const std::string& path, const Actor& actor) {
  if (fleet_prefix.empty() || actor.fleet || !PathMatchesPrefix(path, fleet_prefix)) return OkStatus();
  return Status(Code::kForbidden, "fleet_managed",
                path + " is managed by the fleet (under \"" + fleet_prefix +
                    "\"): change it with `sealkeep fleet put`, which every entitled host applies");
}

Result<TxnResult> ServiceImpl::Transact(std::vector<Op> ops, const std::string& key, const Actor& actor,
                                        TxnFailure* failure) {
  TxnFailure unused;
  TxnFailure& failed = failure != nullptr ? *failure : unused;
  failed = TxnFailure{};
  if (ops.empty()) return InvalidArgument("a transaction needs at least one op", "bad_request");
  if (ops.size() > kMaxOps) return InvalidArgument("a transaction has at most 1000 ops", "bad_request");
  for (std::size_t i = 0; i < ops.size(); ++i) {
    Status st = ValidateOp(ops[i], options_);
    // A check-version op changes nothing: a caller may guard its txn on a fleet path's version.
    if (st.ok() && ops[i].type != Op::Type::kCheckVersion)
      st = CheckFleetManaged(options_.fleet_prefix, ops[i].path, actor);
    if (!st.ok()) {
      failed = {i + 1, ops[i].type};
      return st.WithContext("op " + std::to_string(i + 1));
    }
  }
  if (key.size() > kMaxIdempotencyKey ||
      !std::all_of(key.begin(), key.end(), [](char c) { return c > 0x20 && c < 0x7f; })) {
    return InvalidArgument("an idempotency key is at most 128 printable ASCII characters", "bad_request");
  }
  Digest digest = key.empty() ? Digest{} : RequestDigest(jk_, ops);
  std::string digest_hex = HexEncode(digest);
  const std::string stored_key = key.empty() ? key : StoredIdempotencyKey(jk_, actor.idempotency_scope, key);

  TxnResult result;
  Status st = Submit([&](Batch& b) -> Status {
    result = TxnResult{};
    failed = TxnFailure{};
    if (actor.change_record) {
      SK_ASSIGN_OR_RETURN(ChangeRecord kept, actor.change_record());
      SK_RETURN_IF_ERROR(b.writer().PutAuditOutbox(kept.log_seq, kept.record));
      b.outbox_high = std::max(b.outbox_high, kept.log_seq);
    }
    if (!key.empty()) {
      std::optional<std::string> seen;
      if (auto it = b.idempotency.find(stored_key); it != b.idempotency.end()) seen = it->second;
      SK_ASSIGN_OR_RETURN(auto prior, b.writer().GetIdempotency(stored_key));
      if (prior || seen) {
        if ((prior && prior->request_digest != digest) || (seen && *seen != digest_hex)) {
          return Conflict("the idempotency key was used for a different request", "idempotency_key_reused");
        }
        if (prior) {
          result = DecodeResult(prior->result);
          result.replayed = true;
          return OkStatus();
        }
        return Conflict("the same idempotent request is already in this batch", "idempotency_in_flight");
      }
    }
    OpApplier applier(*this, b, actor);
    for (std::size_t i = 0; i < ops.size(); ++i) {
      OpResult r;
      Status op_st = applier.Apply(ops[i], r);
      if (!op_st.ok()) {
        failed = {i + 1, ops[i].type};
        return op_st.WithContext("op " + std::to_string(i + 1) + " of " + std::to_string(ops.size()) + " (" +
                                 std::string(OpTypeName(ops[i].type)) + " " + ops[i].path + ")");
      }
      result.results.push_back(std::move(r));
    }
    result.txn_id = HexEncode(b.txn_id());
    result.seq = b.tip().seq;
    if (!key.empty()) {
      SK_RETURN_IF_ERROR(b.writer().PutIdempotency(
          {stored_key, digest, EncodeResult(result), static_cast<std::int64_t>(b.now_ms())}));
      b.idempotency[stored_key] = digest_hex;
      std::uint64_t hour_ago = b.now_ms() - 3'600'000;
      if (g_last_idempotency_purge_ms.load() < hour_ago) {
        g_last_idempotency_purge_ms = b.now_ms();
        auto ttl_ms = static_cast<std::int64_t>(
            std::chrono::duration_cast<std::chrono::milliseconds>(options_.idempotency_ttl).count());
        SK_RETURN_IF_ERROR(
            b.writer().DeleteIdempotencyBefore(static_cast<std::int64_t>(b.now_ms()) - ttl_ms));
      }
    }
    return OkStatus();
  });
  if (!st.ok()) return st;
  return result;
}

}  // namespace internal
}  // namespace sk::secrets
