#pragma once
// Internal to broker/protocol: the delayed-message APIs (Cancel, ListDelayed) and the delayed
// counts shown by topic and subscription describe.
#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <memory>
#include <utility>

#include "broker/protocol/response.h"
#include "broker/topics/router.h"

namespace ferry::runtime {
class shard_set;
}

namespace ferry::protocol {

namespace asio = boost::asio;

struct delayed_summary {
  int64_t pending = 0;
  int64_t next_due = -1;  // ms; -1: none
};

// Pending delayed messages of one partition and the next due time (memory, else the index).
asio::awaitable<delayed_summary> delayed_summary_of(runtime::shard_set* rt, std::shared_ptr<partition::partition> p);

// Cancel goes to the partition's leader (topics::router); list-delayed reads any local replica.
asio::awaitable<body_result> do_cancel(runtime::shard_set* rt, topics::topic_manager* topics,
                                       const topics::router* routes, fbb_t* fbb, const w::CancelRequest* req);
asio::awaitable<body_result> do_list_delayed(runtime::shard_set* rt, topics::topic_manager* topics, fbb_t* fbb,
                                             const w::ListDelayedRequest* req);

}  // namespace ferry::protocol
