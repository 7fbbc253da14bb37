// Lease records in the secret service (agent/secrets/lease_record.h): journaled as kind
// `lease` with no path, only the transitions of the diagram accepted, everything rebuilt
// from the journal on restart, the note's format strict, and the journal still verifying.
#include <gtest/gtest.h>

#include "agent/secrets/lease_record.h"
#include "tests/agent/service_fixture.h"

namespace sk::testing {
namespace {

using secrets::LeaseRecord;
using secrets::LeaseState;

LeaseRecord Make(const std::string& id, LeaseState state) {
  LeaseRecord r;
  r.id = id;
  r.name = "pg/readonly";
  r.role = secrets::LeaseRole(id);
  r.state = state;
  r.created_ms = 1000;
  r.expires_ms = 5000;
  return r;
}

const std::string kId = "0123456789abcdef";

TEST(LeaseRecordTest, NotesRoundTripAndAnythingElseIsRefused) {
  LeaseRecord r = Make(kId, LeaseState::kRevoking);
  r.reason = "target_unavailable";
  auto back = secrets::ParseLeaseNote(secrets::EncodeLeaseNote(r));
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->id, kId);
  EXPECT_EQ(back->name, "pg/readonly");
  EXPECT_EQ(back->role, "sk_lease_" + kId);
  EXPECT_EQ(back->state, LeaseState::kRevoking);
  EXPECT_EQ(back->created_ms, 1000u);
  EXPECT_EQ(back->reason, "target_unavailable");
  for (const char* bad :
       {"", "lease v2 id=0123456789abcdef",
        "lease v1 id=0123456789abcdef name=x role=sk_lease_0123456789abcdef",
        "lease v1 id=0123456789ABCDEF name=x role=sk_lease_0123456789ABCDEF state=active created=1",
        "lease v1 id=0123456789abcdef name=x role=other state=active created=1",
        "lease v1 id=0123456789abcdef name=x role=sk_lease_0123456789abcdef state=gone created=1",
        "lease v1 id=0123456789abcdef name=x role=sk_lease_0123456789abcdef state=active created=1 extra=1",
        "lease v1 id=0123456789abcdef name=x role=sk_lease_0123456789abcdef state=active created=-1"}) {
    EXPECT_FALSE(secrets::ParseLeaseNote(bad).has_value()) << bad;
  }
}

TEST(LeaseRecordTest, OnlyTheDiagramsTransitions) {
  using S = LeaseState;
  EXPECT_TRUE(secrets::LeaseTransitionAllowed(S::kCreating, S::kActive));
  EXPECT_TRUE(secrets::LeaseTransitionAllowed(S::kCreating, S::kFailed));
  EXPECT_TRUE(secrets::LeaseTransitionAllowed(S::kActive, S::kRevoking));
  EXPECT_TRUE(secrets::LeaseTransitionAllowed(S::kFailed, S::kRevoking));
  EXPECT_TRUE(secrets::LeaseTransitionAllowed(S::kRevoking, S::kRevoked));
  EXPECT_TRUE(secrets::LeaseTransitionAllowed(S::kActive, S::kRevoked));
  EXPECT_FALSE(secrets::LeaseTransitionAllowed(S::kRevoked, S::kActive));
  EXPECT_FALSE(secrets::LeaseTransitionAllowed(S::kRevoked, S::kRevoked));
  EXPECT_FALSE(secrets::LeaseTransitionAllowed(S::kActive, S::kCreating));
  EXPECT_FALSE(secrets::LeaseTransitionAllowed(S::kRevoking, S::kActive));
  EXPECT_FALSE(secrets::LeaseTransitionAllowed(S::kFailed, S::kActive));
}

TEST(LeaseServiceTest, RecordsAreJournaledCheckedAndRebuiltOnRestart) {
  ServiceHarness h("lease");
  ASSERT_TRUE(h.Open().ok());
  // A lease starts by being created, and then follows the diagram.
  EXPECT_EQ(h.svc().RecordLease(Make(kId, LeaseState::kActive), h.actor).status().reason(), "no_such_lease");
  ASSERT_TRUE(h.svc().RecordLease(Make(kId, LeaseState::kCreating), h.actor).ok());
  EXPECT_EQ(h.svc().RecordLease(Make(kId, LeaseState::kCreating), h.actor).status().reason(), "lease_state");
  // Only the state and reason of a later record count: the rest is the lease's own.
  LeaseRecord active = Make(kId, LeaseState::kActive);
  active.name = "pg/other";
  active.expires_ms = 999'999;
  ASSERT_TRUE(h.svc().RecordLease(active, h.actor).ok());
  LeaseRecord bad = Make(kId, LeaseState::kActive);
  bad.role = "postgres";
  EXPECT_EQ(h.svc().RecordLease(bad, h.actor).status().reason(), "bad_lease");
  bad = Make("not-an-id", LeaseState::kCreating);
  EXPECT_EQ(h.svc().RecordLease(bad, h.actor).status().reason(), "bad_lease");
  const std::string other = "fedcba9876543210";
  ASSERT_TRUE(h.svc().RecordLease(Make(other, LeaseState::kCreating), h.actor).ok());
  LeaseRecord revoking = Make(other, LeaseState::kRevoking);
  revoking.reason = "expired";
  ASSERT_TRUE(h.svc().RecordLease(revoking, h.actor).ok());

  auto check = [&](const char* when) {
    std::vector<LeaseRecord> all = h.svc().Leases();
    ASSERT_EQ(all.size(), 2u) << when;
    const LeaseRecord& a = all[0].id == kId ? all[0] : all[1];
    const LeaseRecord& b = all[0].id == kId ? all[1] : all[0];
    EXPECT_EQ(a.state, LeaseState::kActive) << when;
    EXPECT_EQ(a.name, "pg/readonly") << when;
    EXPECT_EQ(a.expires_ms, 5000u) << when;
    EXPECT_EQ(a.actor, h.actor.text) << when;
    EXPECT_EQ(b.state, LeaseState::kRevoking) << when;
    EXPECT_EQ(b.reason, "expired") << when;
  };
  check("while open");
  ASSERT_TRUE(h.Restart().ok());
  check("after a restart");
  // Lease entries have no path: no secret appears, and the journal verifies.
  auto listed = h.svc().List("", 100, "");
  ASSERT_TRUE(listed.ok());
  EXPECT_TRUE(listed->empty());
  auto verified = h.svc().VerifyAll();
  ASSERT_TRUE(verified.ok());
  EXPECT_TRUE(verified->problems.empty());
  ASSERT_TRUE(h.svc().RecordLease(Make(other, LeaseState::kRevoked), h.actor).ok());
  EXPECT_EQ(h.svc().RecordLease(Make(other, LeaseState::kRevoking), h.actor).status().reason(),
            "lease_state");
}

}  // namespace
}  // namespace sk::testing
