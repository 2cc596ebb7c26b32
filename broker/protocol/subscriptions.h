#pragma once
// Internal to broker/protocol: the subscription APIs on the wire (create, delete, list, describe,
// seek) and the consumers (join, leave, ack; deliveries pushed on the member's connection).
//
// Members. A member joins on one connection and belongs to it: acks, leaves and credit from
// another connection are refused (unknown_member), and when the connection closes the member
// leaves at once, its leases released for redelivery. Members live in a registry (any shard,
// under a mutex); every partition's dispatcher of the subscription holds the member's link and
// delivers to it from the partition's shard, building the push frame there.
#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <memory>

#include "broker/net/server.h"
#include "broker/protocol/response.h"
#include "broker/topics/router.h"

namespace ferry::runtime {
class shard_set;
}

namespace ferry::protocol {

namespace asio = boost::asio;

class subscriptions {
 public:
  // `rt`, `topics` and `routes` must outlive this object; `metadata_version` is read for push frames.
  subscriptions(runtime::shard_set& rt, topics::topic_manager& topics, const topics::router& routes);
  ~subscriptions();
  subscriptions(const subscriptions&) = delete;
  subscriptions& operator=(const subscriptions&) = delete;

  // The request bodies point into the request frame, which the caller keeps alive; so is `fbb`.
  asio::awaitable<body_result> create(fbb_t* fbb, const w::CreateSubscriptionRequest* req);
  asio::awaitable<body_result> remove(fbb_t* fbb, const w::DeleteSubscriptionRequest* req);
  asio::awaitable<body_result> list(fbb_t* fbb, const w::ListSubscriptionsRequest* req);
  asio::awaitable<body_result> describe(fbb_t* fbb, const w::DescribeSubscriptionRequest* req);
  asio::awaitable<body_result> seek(fbb_t* fbb, const w::SeekSubscriptionRequest* req);
  asio::awaitable<body_result> join(fbb_t* fbb, const w::JoinRequest* req, net::session_info s);
  asio::awaitable<body_result> leave(fbb_t* fbb, const w::LeaveRequest* req, net::session_info s);
  asio::awaitable<body_result> ack(fbb_t* fbb, const w::AckRequest* req, net::session_info s);

  // Every member of the session leaves (its connection closed).
  void session_closed(const net::session_info& s);

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace ferry::protocol
