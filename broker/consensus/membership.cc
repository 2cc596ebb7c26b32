#include "broker/consensus/membership.h"

#include <algorithm>
#include <charconv>

namespace ferry::consensus {
namespace {

bool contains(const std::vector<node_id>& v, node_id n) { return std::find(v.begin(), v.end(), n) != v.end(); }

bool majority(const std::vector<node_id>& set, const std::vector<node_id>& yes) {
  size_t n = 0;
  for (node_id id : set) n += contains(yes, id) ? 1 : 0;
  return n > set.size() / 2;
}

void put(std::string& out, const char* key, const std::vector<node_id>& ids) {
  out += key;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i > 0) out += ',';
    out += std::to_string(ids[i].value);
  }
}

bool take(std::string_view part, char key, std::vector<node_id>& ids) {
  if (part.size() < 2 || part[0] != key || part[1] != '=') return false;
  part.remove_prefix(2);
  while (!part.empty()) {
    const size_t comma = part.find(',');
    const std::string_view num = part.substr(0, comma);
    int32_t v = 0;
    auto [end, ec] = std::from_chars(num.data(), num.data() + num.size(), v);
    if (ec != std::errc{} || end != num.data() + num.size() || v <= 0) return false;
    ids.push_back(node_id{v});
    if (comma == std::string_view::npos) break;
    part.remove_prefix(comma + 1);
  }
  return true;
}

}  // namespace

bool membership::is_voter(node_id n) const { return contains(voters, n) || contains(outgoing, n); }

bool membership::is_member(node_id n) const { return is_voter(n) || contains(learners, n); }

bool membership::has_quorum(const std::vector<node_id>& yes) const {
  return majority(voters, yes) && (!joint() || majority(outgoing, yes));
}

std::vector<node_id> membership::others(node_id self) const {
  std::vector<node_id> out;
  for (const auto* set : {&voters, &outgoing, &learners}) {
    for (node_id n : *set) {
      if (n != self && !contains(out, n)) out.push_back(n);
    }
  }
  return out;
}

std::string encode_membership(const membership& m) {
  std::string out;
  put(out, "v=", m.voters);
  put(out, ";o=", m.outgoing);
  put(out, ";l=", m.learners);
  return out;
}

bool decode_membership(std::string_view text, membership& out) {
  out = membership{};
  const size_t a = text.find(';');
  const size_t b = a == std::string_view::npos ? a : text.find(';', a + 1);
  if (b == std::string_view::npos) return false;
  return take(text.substr(0, a), 'v', out.voters) && take(text.substr(a + 1, b - a - 1), 'o', out.outgoing) &&
         take(text.substr(b + 1), 'l', out.learners);
}

}  // namespace ferry::consensus
