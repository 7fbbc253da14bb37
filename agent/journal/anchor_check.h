// The start-up decision between the store's sealed head and the hardware anchor
// (docs/design.md). Pure: no I/O, so every case is unit-tested.
//
// (In verify reports, anchor_state says in_sync, ahead_of_anchor or replay.)
//   in_sync       the store's head is the anchored head.
//   roll_forward  the store is ahead of the anchor and its head was committed on top of
//                 exactly the anchor the hardware holds: a crash (or a failed anchor
//                 update, or an epoch not yet anchored) between store sync and anchor
//                 update. Advance the anchor to the store's head.
//   replay        anything else: the store is older than the anchor, its history differs
//                 from the anchored one, or the hardware anchor is older than the store
//                 was built on. The agent stays sealed (reason replay_detected) until an
//                 admin runs `sealkeep recover --accept-rollback`.
// Counters are never compared (a TPM orderly counter may jump ahead after an unclean
// shutdown); only sequence numbers and head hashes.
#pragma once

#include <optional>
#include <string>

#include "agent/journal/journal_format.h"
#include "hsm/key_backend.h"

namespace sk::journal {

enum class AnchorVerdict { kInSync, kRollForward, kReplay };

struct AnchorDecision {
  AnchorVerdict verdict;
  std::string explanation;  // for the log and the sealed-state message
};

// `head`: the verified sealed head of the store. `store_seal_at_anchor`: the stored seal
// of the store's entry at anchor.seq, if the store has that entry.
AnchorDecision DecideAnchor(const hsm::Anchor& anchor, const Head& head,
                            const std::optional<Digest>& store_seal_at_anchor);

}  // namespace sk::journal
