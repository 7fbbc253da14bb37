// Power loss at every sync point of the audit log (issue 18, docs/reliability.md).
//
// PowerLossEnv wraps the real file system (AuditEnv::Posix) and keeps, for the audit
// folder, what a power cut would leave: each file's content as of its last Sync, and the
// folder's entries (names -> files) as of its last SyncDir. A file created and synced
// whose name was never made durable by a folder sync is gone after the cut; a rename not
// yet made durable is undone. The power fails at sync point k (the k-th file or folder
// sync, 0-based, counted from arming): that sync is not made, every later call that would
// change the disk fails, and once the writer is gone the folder is rewritten to the
// durable image (torn: each file keeps the first half of what it had written past its
// durable content, a torn append).
//
// Swept operations, each on a log holding records 1..3: a synced append, an append that
// rolls to a new segment, buffered reads then a checkpoint, closing, and opening a log
// whose last line is torn (the open cuts it, records that, and writes a checkpoint).
// After each cut: the log verifies (a torn last line is allowed: the next open cuts it),
// every record whose append or sync was acknowledged before the cut is there, and the log
// opens for writing again, takes a record and verifies after it.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <map>
#include <string>

#include "agent/audit/audit_env.h"
#include "agent/audit/audit_verifier.h"
#include "agent/audit/audit_writer.h"
#include "tests/audit/audit_test_util.h"

namespace sk::audit {
namespace {

using Durability = AuditWriter::Durability;
using test::Record;

class PowerLossEnv;

class PowerLossFile final : public AuditFile {
 public:
  PowerLossFile(std::unique_ptr<AuditFile> real, PowerLossEnv& env, int node)
      : real_(std::move(real)), env_(env), node_(node) {}
  Result<std::size_t> Write(ByteView data) override;
  Status Sync() override;
  Status Truncate(std::uint64_t size) override;

 private:
  std::unique_ptr<AuditFile> real_;
  PowerLossEnv& env_;
  int node_;
};

class PowerLossEnv final : public AuditEnv {
 public:
  // Tracks `dir` from now (its present state is durable); the power fails at sync point
  // `fail_at` (-1: never, only count).
  PowerLossEnv(std::string dir, int fail_at, bool torn)
      : dir_(std::move(dir)), fail_at_(fail_at), torn_(torn) {
    for (const auto& e : std::filesystem::directory_iterator(dir_)) {
      if (!e.is_regular_file()) continue;
      const int node = NewNode(testing::ReadFile(e.path().string()));
      names_[e.path().filename().string()] = node;
    }
    durable_names_ = names_;
  }

  int syncs() const { return syncs_; }
  bool off() const { return off_; }

  // Rewrites the folder to what the power cut left (call once nothing uses the files).
  void ApplyImage() {
    ASSERT_TRUE(off_);
    for (const auto& e : std::filesystem::directory_iterator(dir_)) {
      if (e.is_regular_file()) std::filesystem::remove(e.path());
    }
    for (const auto& [name, node] : durable_names_) {
      const Node& n = nodes_[static_cast<std::size_t>(node)];
      std::string content = n.durable;
      if (torn_ && n.at_cut.size() > content.size() && n.at_cut.compare(0, content.size(), content) == 0) {
        content += n.at_cut.substr(content.size(), (n.at_cut.size() - content.size()) / 2);
      }
      testing::WriteFile(dir_ + "/" + name, content);
    }
  }

  // --- AuditEnv ---
  Result<std::unique_ptr<AuditFile>> OpenAppend(const std::string& path) override {
    if (off_) return Off();
    SK_ASSIGN_OR_RETURN(auto file, real_.OpenAppend(path));
    auto it = names_.find(Name(path));
    const int node = it != names_.end() ? it->second : NewNode("");
    names_[Name(path)] = node;
    return std::unique_ptr<AuditFile>(std::make_unique<PowerLossFile>(std::move(file), *this, node));
  }
  Result<std::unique_ptr<AuditFile>> Create(const std::string& path) override {
    if (off_) return Off();
    SK_ASSIGN_OR_RETURN(auto file, real_.Create(path));
    // Truncating an existing file keeps its inode (and its durable content until synced).
    auto it = names_.find(Name(path));
    const int node = it != names_.end() ? it->second : NewNode("");
    names_[Name(path)] = node;
    return std::unique_ptr<AuditFile>(std::make_unique<PowerLossFile>(std::move(file), *this, node));
  }
  Result<std::string> ReadFile(const std::string& path) override { return real_.ReadFile(path); }
  Result<std::vector<std::string>> ListDir(const std::string& dir) override { return real_.ListDir(dir); }
  bool IsDirectory(const std::string& path) override { return real_.IsDirectory(path); }
  Status CreateDir(const std::string& dir) override {
    if (off_) return Off();
    return real_.CreateDir(dir);
  }
  Status Rename(const std::string& from, const std::string& to) override {
    if (off_) return Off();
    SK_RETURN_IF_ERROR(real_.Rename(from, to));
    auto it = names_.find(Name(from));
    if (it != names_.end()) {
      names_[Name(to)] = it->second;
      names_.erase(Name(from));
    }
    return OkStatus();
  }
  Status Remove(const std::string& path) override {
    if (off_) return Off();
    SK_RETURN_IF_ERROR(real_.Remove(path));
    names_.erase(Name(path));
    return OkStatus();
  }
  Status SyncDir(const std::string& dir) override {
    if (SyncPointFails()) return Off();
    SK_RETURN_IF_ERROR(real_.SyncDir(dir));
    if (dir == dir_) durable_names_ = names_;
    return OkStatus();
  }

 private:
  friend class PowerLossFile;
  struct Node {
    std::string durable;  // content as of its last sync
    std::string at_cut;   // content when the power failed
  };

  static Status Off() {
    return Unavailable("the machine is off (simulated power loss)", "audit_unavailable");
  }
  static std::string Name(const std::string& path) { return std::filesystem::path(path).filename().string(); }
  int NewNode(std::string durable) {
    nodes_.push_back(Node{std::move(durable), ""});
    return static_cast<int>(nodes_.size() - 1);
  }
  // Counts a sync point; true when the power fails at it (and from then on).
  bool SyncPointFails() {
    if (off_) return true;
    if (syncs_++ != fail_at_) return false;
    off_ = true;
    // What each file held at the cut: the tear keeps part of what was not yet synced.
    for (const auto& [name, node] : names_) {
      nodes_[static_cast<std::size_t>(node)].at_cut = testing::ReadFile(dir_ + "/" + name);
    }
    return true;
  }
  void Synced(int node) {
    for (const auto& [name, n] : names_) {
      if (n == node) nodes_[static_cast<std::size_t>(node)].durable = testing::ReadFile(dir_ + "/" + name);
    }
  }

  AuditEnv& real_ = *AuditEnv::Posix();
  std::string dir_;
  int fail_at_;
  bool torn_;
  int syncs_ = 0;
  bool off_ = false;
  std::vector<Node> nodes_;
  std::map<std::string, int> names_;          // the folder now
  std::map<std::string, int> durable_names_;  // the folder as of its last sync
};

Result<std::size_t> PowerLossFile::Write(ByteView data) {
  if (env_.off_) return PowerLossEnv::Off();
  return real_->Write(data);
}
Status PowerLossFile::Sync() {
  if (env_.SyncPointFails()) return PowerLossEnv::Off();
  SK_RETURN_IF_ERROR(real_->Sync());
  env_.Synced(node_);
  return OkStatus();
}
Status PowerLossFile::Truncate(std::uint64_t size) {
  if (env_.off_) return PowerLossEnv::Off();
  return real_->Truncate(size);
}

// One operation on a log holding records 1..3 (writer `w`, open on the env). Returns the
// request numbers of the records acknowledged as durable.
struct Case {
  const char* name;
  std::uint64_t max_segment_bytes;
  std::function<std::vector<int>(AuditWriter& w)> run;
};

std::vector<int> IfOk(const Status& st, std::vector<int> records) {
  return st.ok() ? records : std::vector<int>{};
}

const Case kCases[] = {
    {"append", kDefaultMaxSegmentBytes,
     [](AuditWriter& w) { return IfOk(w.Append(Record(4), Durability::kSync), {4}); }},
    // Segments of 4 KiB (the least allowed) and a record of about 4 KiB: the append rolls
    // (sync the old segment, the new one's header through a tmp file, rename, folder sync,
    // checkpoint).
    {"roll", 4096,
     [](AuditWriter& w) {
       AuditRecord big = Record(4);
       big.peer.exe = "/usr/bin/" + std::string(3900, 'x');
       return IfOk(w.Append(big, Durability::kSync), {4});
     }},
    {"checkpoint", kDefaultMaxSegmentBytes,
     [](AuditWriter& w) {
       for (int i = 4; i <= 6; ++i) {
         if (!w.Append(Record(i), Durability::kBuffered).ok()) return std::vector<int>{};
       }
       return IfOk(w.Checkpoint(), {4, 5, 6});
     }},
    {"close", kDefaultMaxSegmentBytes,
     [](AuditWriter& w) {
       if (!w.Append(Record(4), Durability::kBuffered).ok()) return std::vector<int>{};
       return IfOk(w.Close(), {4});
     }},
    // The last segment ends in half a line (a crash mid-write): opening cuts it, records
    // the cut as an event, and writes a checkpoint.
    {"open_torn", kDefaultMaxSegmentBytes,
     [](AuditWriter& w) { return IfOk(w.Append(Record(4), Durability::kSync), {4}); }},
};

class AuditPowerLossTest : public ::testing::TestWithParam<Case> {
 protected:
  std::unique_ptr<AuditWriter> Open(AuditEnv* env) {
    AuditWriterOptions o;
    o.dir = dir_;
    o.env = env;
    o.max_segment_bytes = GetParam().max_segment_bytes;
    auto w = AuditWriter::Open(o, key_);
    return w.ok() ? std::move(w).value() : nullptr;
  }
  // Records 1..3, closed; for open_torn, then half a line at the end of the last segment.
  void Prepare() {
    std::filesystem::remove_all(dir_);
    auto w = Open(nullptr);
    ASSERT_TRUE(w);
    for (int i = 1; i <= 3; ++i) ASSERT_TRUE(w->Append(Record(i), Durability::kSync).ok());
    ASSERT_TRUE(w->Close().ok());
    if (std::string(GetParam().name) == "open_torn") {
      std::string last;
      for (const auto& e : std::filesystem::directory_iterator(dir_)) {
        const std::string n = e.path().filename().string();
        if (n.rfind("audit-", 0) == 0 && n > last) last = n;
      }
      std::string text = testing::ReadFile(dir_ + "/" + last);
      text += R"({"seq":99,"time":"2026-01-01T00:00:00.000000Z","request_id":"torn)";
      testing::WriteFile(dir_ + "/" + last, text);
    }
  }
  std::string AllText() {
    std::string all;
    for (const auto& e : std::filesystem::directory_iterator(dir_))
      all += testing::ReadFile(e.path().string());
    return all;
  }
  // Runs the case on a PowerLossEnv failing at `fail_at`; returns what it acknowledged.
  // The open is part of every operation (it writes a checkpoint).
  std::vector<int> Run(PowerLossEnv& env) {
    std::unique_ptr<AuditWriter> w = Open(&env);
    if (!w) return {};
    std::vector<int> acked = GetParam().run(*w);
    w.reset();  // the machine is off: the process is gone
    return acked;
  }

  testing::TempDir tmp_{"audit-power"};
  std::string dir_ = tmp_.Join("audit");
  SecretBytes key_ = test::TestKey();
};

TEST_P(AuditPowerLossTest, EverySyncPointDroppedOrTornKeepsEveryAcknowledgedRecordAndAVerifyingLog) {
  const Case& c = GetParam();
  Prepare();
  int points = 0;
  {
    PowerLossEnv dry(dir_, -1, false);
    EXPECT_FALSE(Run(dry).empty()) << c.name << " fails with the power on";
    if (std::string(c.name) == "roll") {
      EXPECT_TRUE(std::filesystem::exists(test::SegmentPath(dir_, 2))) << "the append did not roll";
    }
    points = dry.syncs();
  }
  ASSERT_GT(points, 0) << c.name << " made no sync";
  int runs = 0, acked_runs = 0;
  for (bool torn : {false, true}) {
    for (int k = 0; k < points; ++k) {
      const std::string what =
          std::string(c.name) + ": power lost at sync point " + std::to_string(k) + (torn ? " (torn)" : "");
      SCOPED_TRACE(what);
      Prepare();
      std::vector<int> acked;
      {
        PowerLossEnv env(dir_, k, torn);
        acked = Run(env);
        ASSERT_TRUE(env.off()) << "the power did not fail";
        env.ApplyImage();
      }
      ++runs;
      acked_runs += acked.empty() ? 0 : 1;
      // The log as the power cut left it verifies (a torn last line is a crash, not tampering).
      auto cut = VerifyAuditLog(dir_, key_);
      ASSERT_TRUE(cut.ok()) << cut.status().ToString();
      EXPECT_TRUE(cut->ok()) << cut->problem->ToString();
      const std::string text = AllText();
      for (int i = 1; i <= 3; ++i) {
        EXPECT_NE(text.find("\"request_id\":\"req-" + std::to_string(i) + "\""), std::string::npos)
            << "record " << i << " (durable before the operation) is lost";
      }
      for (int i : acked) {
        EXPECT_NE(text.find("\"request_id\":\"req-" + std::to_string(i) + "\""), std::string::npos)
            << "record " << i << " was acknowledged, then lost";
      }
      // The log opens for writing again and goes on.
      auto w = Open(nullptr);
      ASSERT_TRUE(w) << "the log does not reopen";
      EXPECT_TRUE(w->Append(Record(7), Durability::kSync).ok());
      EXPECT_TRUE(w->Close().ok());
      auto after = VerifyAuditLog(dir_, key_);
      ASSERT_TRUE(after.ok()) << after.status().ToString();
      EXPECT_TRUE(after->ok()) << after->problem->ToString();
      EXPECT_EQ(after->torn_tail_bytes, 0U);
    }
  }
  std::printf("audit power loss, %s: %d sync points swept, dropped and torn: %d runs (%d acknowledged)\n",
              c.name, points, runs, acked_runs);
}

// The simulation is real: a record appended but never synced is gone after the cut, and a
// segment created and synced whose name no folder sync made durable is gone too.
TEST(AuditPowerLossSimulationTest, UnsyncedBytesAndUnsyncedNamesAreLost) {
  testing::TempDir tmp("audit-power-sim");
  const std::string dir = tmp.Join("audit");
  SecretBytes key = test::TestKey();
  AuditWriterOptions o;
  o.dir = dir;
  {
    auto w = AuditWriter::Open(o, key);
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->Append(Record(1), Durability::kSync).ok());
    ASSERT_TRUE((*w)->Close().ok());
  }
  PowerLossEnv env(dir, 1, false);  // point 0 syncs a.txt; the folder sync (1) fails
  ASSERT_TRUE(env.Create(dir + "/a.txt").ok());
  {
    auto f = env.OpenAppend(dir + "/a.txt");
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE((*f)->Write(AsBytes(std::string_view("synced"))).ok());
    ASSERT_TRUE((*f)->Sync().ok());
  }
  EXPECT_FALSE(env.SyncDir(dir).ok());
  env.ApplyImage();
  EXPECT_FALSE(std::filesystem::exists(dir + "/a.txt")) << "a name no folder sync made durable survived";

  PowerLossEnv env2(dir, 0, false);
  {
    auto f = env2.OpenAppend(test::SegmentPath(dir, 1));
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE((*f)->Write(AsBytes(std::string_view("unsynced line\n"))).ok());
    EXPECT_FALSE((*f)->Sync().ok());
  }
  env2.ApplyImage();
  EXPECT_EQ(testing::ReadFile(test::SegmentPath(dir, 1)).find("unsynced line"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Ops, AuditPowerLossTest, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<Case>& p) { return std::string(p.param.name); });

}  // namespace
}  // namespace sk::audit
