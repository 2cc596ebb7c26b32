#pragma once
// Who is in a group: its voters, the outgoing voters while a joint configuration is in force, and
// its learners. A configuration change is two log entries (Raft's joint consensus, thesis §4.3):
// C_old,new (voters = new, outgoing = old) and, once that is committed, C_new. While joint, an
// election, a commit, the lease and check-quorum each need a majority of BOTH sets. A member uses
// the latest configuration in its log, committed or not.
#include <string>
#include <string_view>
#include <vector>

#include "schema/types.h"

namespace ferry::consensus {

struct membership {
  std::vector<node_id> voters;    // C_new, or the only configuration
  std::vector<node_id> outgoing;  // C_old while joint; empty otherwise
  std::vector<node_id> learners;  // get the log; never vote or count
  [[nodiscard]] bool joint() const { return !outgoing.empty(); }
  [[nodiscard]] bool is_voter(node_id n) const;  // in voters or outgoing
  [[nodiscard]] bool is_member(node_id n) const;
  // True if `yes` holds a majority of voters and, while joint, of outgoing too.
  [[nodiscard]] bool has_quorum(const std::vector<node_id>& yes) const;
  // Every member but `self`, each once.
  [[nodiscard]] std::vector<node_id> others(node_id self) const;
  friend bool operator==(const membership&, const membership&) = default;
};

// The payload of a config entry: "v=1,2,3;o=1,2;l=4" (decimal node ids; empty lists allowed).
std::string encode_membership(const membership& m);
// False if `text` is not what encode_membership() makes.
[[nodiscard]] bool decode_membership(std::string_view text, membership& out);

}  // namespace ferry::consensus
