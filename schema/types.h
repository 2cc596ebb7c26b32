#pragma once
// Strong types for values that are easy to swap (STYLE.md). Each wraps one integer; arithmetic
// is explicit (`.value`), comparisons are provided.
#include <compare>
#include <cstdint>
#include <functional>

namespace ferry {

template <class Tag, class Rep>
struct strong_int {
  Rep value{};
  constexpr strong_int() = default;
  constexpr explicit strong_int(Rep v) : value(v) {}
  constexpr auto operator<=>(const strong_int&) const = default;
};

struct offset_tag {};
struct partition_tag {};
struct epoch_tag {};
struct node_tag {};
struct shard_tag {};

using offset = strong_int<offset_tag, int64_t>;  // position of a message in a partition log
using partition_id = strong_int<partition_tag, int32_t>;
using epoch = strong_int<epoch_tag, int32_t>;  // leader epoch == Raft term
using node_id = strong_int<node_tag, int32_t>;
using shard_id = strong_int<shard_tag, uint32_t>;

}  // namespace ferry

template <class Tag, class Rep>
struct std::hash<ferry::strong_int<Tag, Rep>> {
  size_t operator()(const ferry::strong_int<Tag, Rep>& v) const noexcept { return std::hash<Rep>{}(v.value); }
};
