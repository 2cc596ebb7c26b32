// The peer transport over real loopback sockets (port 0). No sleeps: every test runs the
// io_context one handler at a time until a condition holds, with a deadline.
#include "broker/peer/transport.h"

#include <gtest/gtest.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "broker/runtime/metrics.h"
#include "schema/endian.h"

namespace ferry::peer {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using consensus::entry;
using consensus::entry_kind;
using consensus::message;
using consensus::msg_type;
using consensus::time_point;

struct received {
  group_id group = 0;
  message msg;
  time_point at{0};
};

struct node {
  std::unique_ptr<transport> t;
  std::vector<received> got;
  uint16_t port = 0;
  node_id id;
};

message make(msg_type type, node_id from, node_id to) {
  message m;
  m.type = type;
  m.from = from;
  m.to = to;
  m.term = 5;
  switch (type) {
    case msg_type::pre_vote:
    case msg_type::vote:
      m.last_index = 10;
      m.last_term = 4;
      m.transfer = type == msg_type::vote;
      break;
    case msg_type::pre_vote_reply:
    case msg_type::vote_reply:
      m.granted = true;
      break;
    case msg_type::append:
      m.prev_index = 10;
      m.prev_term = 4;
      m.entries = {entry{11, 5, entry_kind::normal, "hello"}, entry{12, 5, entry_kind::noop, ""}};
      m.commit = 9;
      m.sent_at = time_point(1234);
      break;
    case msg_type::append_reply:
      m.prev_index = 10;
      m.sent_at = time_point(1234);
      m.match = 12;
      m.durable = 11;
      m.conflict_term = 3;
      m.conflict_index = 7;
      break;
    case msg_type::heartbeat:
      m.commit = 12;
      m.sent_at = time_point(5678);
      break;
    case msg_type::heartbeat_reply:
      m.sent_at = time_point(5678);
      m.match = 12;
      m.durable = 12;
      break;
    case msg_type::timeout_now:
      break;
    case msg_type::install_snapshot:
      m.prev_index = 100;
      m.prev_term = 4;
      m.commit = 100;
      m.sent_at = time_point(99);
      m.config.voters = {node_id{1}, node_id{2}, node_id{3}};
      m.config.learners = {node_id{4}};
      break;
  }
  return m;
}

constexpr msg_type all_types[] = {
    msg_type::pre_vote,    msg_type::pre_vote_reply,   msg_type::vote,      msg_type::vote_reply,
    msg_type::append,      msg_type::append_reply,     msg_type::heartbeat, msg_type::heartbeat_reply,
    msg_type::timeout_now, msg_type::install_snapshot,
};

void expect_same(const message& x, const message& y) {
  EXPECT_EQ(x.type, y.type);
  EXPECT_EQ(x.from, y.from);
  EXPECT_EQ(x.to, y.to);
  EXPECT_EQ(x.term, y.term);
  EXPECT_EQ(x.last_index, y.last_index);
  EXPECT_EQ(x.last_term, y.last_term);
  EXPECT_EQ(x.transfer, y.transfer);
  EXPECT_EQ(x.granted, y.granted);
  EXPECT_EQ(x.prev_index, y.prev_index);
  EXPECT_EQ(x.prev_term, y.prev_term);
  EXPECT_EQ(x.entries, y.entries);
  EXPECT_EQ(x.commit, y.commit);
  EXPECT_EQ(x.sent_at, y.sent_at);
  EXPECT_EQ(x.match, y.match);
  EXPECT_EQ(x.durable, y.durable);
  EXPECT_EQ(x.conflict_term, y.conflict_term);
  EXPECT_EQ(x.conflict_index, y.conflict_index);
  EXPECT_EQ(x.config, y.config);
}

class peer_transport : public ::testing::Test {
 protected:
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
  std::vector<std::unique_ptr<node>> nodes;

  void TearDown() override {
    for (auto& n : nodes) n->t->close();
    EXPECT_TRUE(run_until([&] {
      return std::all_of(nodes.begin(), nodes.end(), [](const auto& n) { return n->t->stopped(); });
    })) << "a transport did not stop";
  }

  node& add_node(int id, std::string cluster = "test-cluster",
                 const std::function<void(transport_config&)>& tweak = {}) {
    auto n = std::make_unique<node>();
    n->id = node_id{id};
    transport_config cfg;
    cfg.cluster_id = std::move(cluster);
    cfg.self = node_id{id};
    cfg.incarnation = 1000 + static_cast<uint64_t>(id);
    cfg.listen_port = 0;
    cfg.reconnect_min = std::chrono::milliseconds(5);
    cfg.reconnect_max = std::chrono::milliseconds(50);
    cfg.keepalive_interval = std::chrono::milliseconds(60'000);  // no keepalive inside a test
    cfg.idle_timeout = std::chrono::milliseconds(600'000);
    if (tweak) tweak(cfg);
    node* raw = n.get();
    n->t = std::make_unique<transport>(io.get_executor(), cfg, [raw](group_id g, message m, time_point at) {
      raw->got.push_back(received{g, std::move(m), at});
    });
    auto port = n->t->listen();
    EXPECT_TRUE(port) << port.error().to_string();
    n->port = port ? *port : 0;
    n->t->start();
    nodes.push_back(std::move(n));
    return *nodes.back();
  }

  // Makes every node know every other (each dials the higher ids).
  void mesh() {
    for (auto& a : nodes)
      for (auto& b : nodes)
        if (a != b) a->t->add_peer(b->id, "127.0.0.1", b->port);
  }

  bool run_until(const std::function<bool()>& pred, std::chrono::seconds limit = std::chrono::seconds(20)) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (!pred()) {
      if (std::chrono::steady_clock::now() > end) return false;
      io.run_one_for(std::chrono::milliseconds(10));
    }
    return true;
  }
};

TEST_F(peer_transport, two_brokers_exchange_every_message_type_both_ways) {
  node& a = add_node(1);
  node& b = add_node(2);
  mesh();
  // b queues before any connection exists (it waits for a, the lower id, to dial).
  for (size_t i = 0; i < std::size(all_types); ++i) b.t->send(a.id, 100 + i, make(all_types[i], b.id, a.id));
  for (size_t i = 0; i < std::size(all_types); ++i) a.t->send(b.id, 200 + i, make(all_types[i], a.id, b.id));
  ASSERT_TRUE(run_until([&] { return a.got.size() == std::size(all_types) && b.got.size() == std::size(all_types); }));
  for (auto* n : {&a, &b}) {
    const node_id from = n == &a ? b.id : a.id;
    const group_id base = n == &a ? 100 : 200;
    for (const auto& r : n->got) {
      ASSERT_GE(r.group, base);
      ASSERT_LT(r.group, base + std::size(all_types));
      SCOPED_TRACE(consensus::msg_type_name(r.msg.type));
      expect_same(r.msg, make(all_types[r.group - base], from, n->id));
      EXPECT_GT(r.at.count(), 0);  // the receive time on the monotonic clock
    }
  }
  EXPECT_EQ(a.t->stats().connections_dialed, 1U);
  EXPECT_EQ(b.t->stats().connections_accepted, 1U);
  EXPECT_EQ(b.t->stats().connections_dialed, 0U);
}

TEST_F(peer_transport, three_brokers_hold_one_connection_per_pair) {
  add_node(1);
  add_node(2);
  add_node(3);
  mesh();
  for (auto& from : nodes)
    for (auto& to : nodes)
      if (from != to) {
        auto m = make(msg_type::vote, from->id, to->id);
        from->t->send(to->id, static_cast<group_id>(from->id.value) * 10 + static_cast<group_id>(to->id.value), m);
      }
  ASSERT_TRUE(run_until(
      [&] { return std::all_of(nodes.begin(), nodes.end(), [](const auto& n) { return n->got.size() == 2; }); }));
  for (auto& n : nodes)
    for (const auto& r : n->got) {
      EXPECT_EQ(r.msg.to, n->id);
      EXPECT_EQ(r.group, static_cast<group_id>(r.msg.from.value) * 10 + static_cast<group_id>(n->id.value));
    }
  // 1 dials 2 and 3; 2 dials 3; nobody dials a lower id.
  EXPECT_EQ(nodes[0]->t->stats().connections_dialed, 2U);
  EXPECT_EQ(nodes[0]->t->stats().connections_accepted, 0U);
  EXPECT_EQ(nodes[1]->t->stats().connections_dialed, 1U);
  EXPECT_EQ(nodes[1]->t->stats().connections_accepted, 1U);
  EXPECT_EQ(nodes[2]->t->stats().connections_dialed, 0U);
  EXPECT_EQ(nodes[2]->t->stats().connections_accepted, 2U);
}

TEST_F(peer_transport, heartbeats_of_a_thousand_groups_travel_as_one_frame) {
  node& a = add_node(1);
  node& b = add_node(2);
  mesh();
  ASSERT_TRUE(run_until([&] { return a.t->connected(b.id) && b.t->connected(a.id); }));
  constexpr size_t groups = 1000;
  const auto frames_before = b.t->stats().frames_received;
  const auto bytes_before = b.t->stats().bytes_received;
  for (group_id g = 0; g < groups; ++g) {
    auto m = make(msg_type::heartbeat, a.id, b.id);
    m.term = 1 + g % 3;
    m.commit = g;
    a.t->send(b.id, g, m);
  }
  ASSERT_TRUE(run_until([&] { return b.got.size() == groups; }));
  EXPECT_EQ(b.t->stats().frames_received - frames_before, 1U);
  const auto bytes = b.t->stats().bytes_received - bytes_before;
  std::printf("1000 heartbeats: one frame of %llu bytes, %.2f bytes per group\n",
              static_cast<unsigned long long>(bytes), static_cast<double>(bytes) / groups);
  EXPECT_LT(static_cast<double>(bytes) / groups, 32.0);
  for (group_id g = 0; g < groups; ++g) {
    EXPECT_EQ(b.got[g].group, g);
    EXPECT_EQ(b.got[g].msg.commit, g);
  }

  // And the replies, the other way, one frame too.
  const auto replies_before = a.t->stats().frames_received;
  for (group_id g = 0; g < groups; ++g) b.t->send(a.id, g, make(msg_type::heartbeat_reply, b.id, a.id));
  ASSERT_TRUE(run_until([&] { return a.got.size() == groups; }));
  EXPECT_EQ(a.t->stats().frames_received - replies_before, 1U);
}

TEST_F(peer_transport, a_heartbeat_overtakes_bulk_data_queued_before_it) {
  node& a = add_node(1, "test-cluster", [](transport_config& c) { c.max_bulk_write_bytes = size_t{64} * 1024; });
  node& b = add_node(2);
  mesh();
  ASSERT_TRUE(run_until([&] { return a.t->connected(b.id); }));
  constexpr size_t appends = 64;  // 64 x 100 KB: at least 64 writes of bulk
  for (group_id g = 0; g < appends; ++g) {
    auto m = make(msg_type::append, a.id, b.id);
    m.entries = {entry{11, 5, entry_kind::normal, std::string(100'000, 'x')}};
    a.t->send(b.id, g, m);
  }
  ASSERT_TRUE(run_until([&] { return !b.got.empty(); }));
  a.t->send(b.id, 9999, make(msg_type::heartbeat, a.id, b.id));
  ASSERT_TRUE(run_until([&] { return b.got.size() == appends + 1; }));
  size_t pos = 0;
  while (pos < b.got.size() && b.got[pos].group != 9999) ++pos;
  ASSERT_LT(pos, b.got.size());
  EXPECT_LT(pos, appends / 2) << "the heartbeat waited behind most of the bulk queued before it";
  EXPECT_EQ(b.got[pos].msg.type, msg_type::heartbeat);
}

TEST_F(peer_transport, a_large_append_arrives_whole) {
  node& a = add_node(1);
  node& b = add_node(2);
  mesh();
  auto m = make(msg_type::append, a.id, b.id);
  std::string big(3'000'000, ' ');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
  m.entries = {entry{11, 5, entry_kind::normal, big}, entry{12, 5, entry_kind::normal, "tail"}};
  a.t->send(b.id, 7, m);
  ASSERT_TRUE(run_until([&] { return b.got.size() == 1; }));
  expect_same(b.got[0].msg, m);
}

TEST_F(peer_transport, the_bulk_queue_drops_its_oldest_frames_when_full) {
  // Node 2 never dials 1 (1 is lower, and knows no address of 2): 2's queues only fill.
  node& b = add_node(2, "test-cluster", [](transport_config& c) {
    c.max_bulk_queue_bytes = 300'000;
    c.encoding.target_frame_bytes = 1;  // one message per frame
  });
  node& a = add_node(1);
  auto& dropped_metric =
      metrics::get_counter("ferry_peer_dropped_frames_total",
                           "Queued peer frames dropped, oldest first, over the queue bound", {{"lane", "bulk"}});
  const uint64_t dropped_before = dropped_metric.value();
  for (group_id g = 0; g < 10; ++g) {
    auto m = make(msg_type::append, b.id, a.id);
    m.entries = {entry{11, 5, entry_kind::normal, std::string(100'000, 'x')}};
    b.t->send(a.id, g, m);
  }
  b.t->send(a.id, 77, make(msg_type::vote_reply, b.id, a.id));  // control: not dropped
  ASSERT_TRUE(run_until([&] { return b.t->stats().bulk_dropped_frames > 0; }));
  EXPECT_EQ(b.t->stats().bulk_dropped_frames, 8U);  // two 100 KB frames fit in 300 KB
  EXPECT_EQ(b.t->stats().bulk_dropped_messages, 8U);
  EXPECT_EQ(dropped_metric.value() - dropped_before, 8U);  // and on /metrics
  // Now let a connect: the newest two appends and the vote reply arrive.
  a.t->add_peer(b.id, "127.0.0.1", b.port);
  ASSERT_TRUE(run_until([&] { return a.got.size() == 3; }));
  std::vector<group_id> groups;
  for (const auto& r : a.got) groups.push_back(r.group);
  EXPECT_EQ(groups, (std::vector<group_id>{77, 8, 9}));
}

TEST_F(peer_transport, a_closed_connection_is_redialed_and_traffic_resumes) {
  node& a = add_node(1);
  node& b = add_node(2);
  mesh();
  a.t->send(b.id, 1, make(msg_type::vote, a.id, b.id));
  ASSERT_TRUE(run_until([&] { return b.got.size() == 1; }));

  // The dialing side closes its socket: it dials again.
  a.t->disconnect(b.id);
  EXPECT_FALSE(a.t->connected(b.id));
  ASSERT_TRUE(run_until([&] { return a.t->stats().connections_dialed == 2 && a.t->connected(b.id); }));
  a.t->send(b.id, 2, make(msg_type::vote, a.id, b.id));
  b.t->send(a.id, 3, make(msg_type::vote_reply, b.id, a.id));
  ASSERT_TRUE(run_until([&] { return b.got.size() == 2 && a.got.size() == 1; }));

  // The accepting side closes its socket: the dialer notices and dials again.
  b.t->disconnect(a.id);
  ASSERT_TRUE(run_until([&] { return a.t->stats().connections_dialed == 3 && b.t->connected(a.id); }));
  b.t->send(a.id, 4, make(msg_type::vote_reply, b.id, a.id));
  a.t->send(b.id, 5, make(msg_type::vote, a.id, b.id));
  ASSERT_TRUE(run_until([&] { return b.got.size() == 3 && a.got.size() == 2; }));
  EXPECT_EQ(b.got.back().group, 5U);
  EXPECT_EQ(a.got.back().group, 4U);
  EXPECT_EQ(b.t->stats().connections_accepted, 3U);
}

TEST_F(peer_transport, a_peer_of_another_cluster_is_refused) {
  node& b = add_node(2, "cluster-x");
  node& c = add_node(1, "cluster-y");
  c.t->add_peer(b.id, "127.0.0.1", b.port);
  c.t->send(b.id, 1, make(msg_type::vote, c.id, b.id));
  // It keeps trying (with backoff) and keeps being refused; nothing is ever delivered.
  ASSERT_TRUE(run_until([&] { return c.t->stats().refused_by_peer >= 3; }));
  EXPECT_GE(b.t->stats().hellos_refused, 3U);
  EXPECT_EQ(b.t->stats().connections_accepted, 0U);
  EXPECT_FALSE(c.t->connected(b.id));
  EXPECT_FALSE(b.t->connected(c.id));
  EXPECT_TRUE(b.got.empty());
}

// A raw TCP client for hostile input, driven by the same io_context.
struct raw_client {
  explicit raw_client(asio::io_context& io) : sock(io) {}
  tcp::socket sock;
  std::vector<std::byte> got;
  bool eof = false;
  std::array<std::byte, 4096> buf{};
  void read_more() {
    sock.async_read_some(asio::buffer(buf), [this](boost::system::error_code ec, size_t n) {
      if (ec) {
        eof = true;
        return;
      }
      got.insert(got.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
      read_more();
    });
  }
  void write(std::vector<std::byte> bytes) {
    auto owned = std::make_shared<std::vector<std::byte>>(std::move(bytes));
    asio::async_write(sock, asio::buffer(*owned), [owned](boost::system::error_code, size_t) {});
  }
};

std::vector<std::byte> bytes_of(const frame& f) { return {f.bytes().begin(), f.bytes().end()}; }

std::vector<std::byte> garbage_frame() {
  std::vector<std::byte> g(4 + 40);
  for (size_t i = 4; i < g.size(); ++i) g[i] = static_cast<std::byte>(i * 37 + 11);
  wire::put_le32(g.data(), 40);
  return g;
}

TEST_F(peer_transport, garbage_closes_only_that_connection) {
  node& b = add_node(2);
  const tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), b.port);

  // 1. Garbage instead of a Hello.
  raw_client r1(io);
  r1.sock.connect(ep);
  r1.read_more();
  r1.write(garbage_frame());
  ASSERT_TRUE(run_until([&] { return r1.eof; }));
  EXPECT_EQ(b.t->stats().malformed_frames, 1U);

  // 2. A proper Hello, then garbage.
  raw_client r2(io);
  r2.sock.connect(ep);
  r2.read_more();
  r2.write(bytes_of(encode_hello(hello{"test-cluster", node_id{1}, 7, protocol_version})));
  ASSERT_TRUE(run_until([&] { return b.t->connected(node_id{1}); }));
  r2.write(garbage_frame());
  ASSERT_TRUE(run_until([&] { return r2.eof; }));
  EXPECT_EQ(b.t->stats().malformed_frames, 2U);
  EXPECT_FALSE(b.t->connected(node_id{1}));
  ASSERT_GE(r2.got.size(), 4U);  // b answered the Hello with its own first
  EXPECT_EQ(r2.got.size(), 4 + wire::get_le32(r2.got.data()));

  // 3. A length prefix over the limit.
  raw_client r3(io);
  r3.sock.connect(ep);
  r3.read_more();
  r3.write(bytes_of(encode_hello(hello{"test-cluster", node_id{1}, 8, protocol_version})));
  ASSERT_TRUE(run_until([&] { return b.t->connected(node_id{1}); }));
  std::vector<std::byte> huge(4);
  wire::put_le32(huge.data(), 0xFFFFFFF0U);
  r3.write(huge);
  ASSERT_TRUE(run_until([&] { return r3.eof; }));
  EXPECT_EQ(b.t->stats().malformed_frames, 3U);

  // 4. A higher node id that dials is refused (it must wait to be dialed).
  raw_client r4(io);
  r4.sock.connect(ep);
  r4.read_more();
  r4.write(bytes_of(encode_hello(hello{"test-cluster", node_id{3}, 9, protocol_version})));
  ASSERT_TRUE(run_until([&] { return r4.eof; }));
  EXPECT_EQ(b.t->stats().hellos_refused, 1U);

  // The process and the transport live on: a real peer connects and talks.
  node& a = add_node(1);
  a.t->add_peer(b.id, "127.0.0.1", b.port);
  a.t->send(b.id, 42, make(msg_type::timeout_now, a.id, b.id));
  ASSERT_TRUE(run_until([&] { return b.got.size() == 1; }));
  EXPECT_EQ(b.got[0].group, 42U);
}

TEST_F(peer_transport, a_newer_connection_from_the_same_node_replaces_the_old_one) {
  node& a = add_node(1);
  node& b = add_node(2);
  mesh();
  ASSERT_TRUE(run_until([&] { return a.t->connected(b.id) && b.t->connected(a.id); }));
  // Node 1 "restarted" (a new incarnation dials in): b keeps the newest connection and closes a's.
  raw_client r(io);
  r.sock.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), b.port));
  r.read_more();
  r.write(bytes_of(encode_hello(hello{"test-cluster", node_id{1}, 5000, protocol_version})));
  ASSERT_TRUE(run_until([&] { return b.t->stats().connections_accepted == 2; }));
  EXPECT_EQ(b.t->stats().connections_closed, 1U);
  // a sees its connection closed and dials again, which in turn replaces the raw one.
  ASSERT_TRUE(run_until([&] { return a.t->stats().connections_dialed == 2 && a.t->connected(b.id) && r.eof; }));
  a.t->send(b.id, 1, make(msg_type::vote, a.id, b.id));
  ASSERT_TRUE(run_until([&] { return b.got.size() == 1; }));
}

TEST_F(peer_transport, a_hello_with_another_protocol_version_is_refused) {
  node& b = add_node(2);
  raw_client r(io);
  r.sock.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), b.port));
  r.read_more();
  r.write(bytes_of(encode_hello(hello{"test-cluster", node_id{1}, 1, protocol_version + 1})));
  ASSERT_TRUE(run_until([&] { return r.eof; }));
  EXPECT_EQ(b.t->stats().hellos_refused, 1U);
  EXPECT_FALSE(b.t->connected(node_id{1}));
  // The answer was a Reject that says why.
  ASSERT_GE(r.got.size(), 4U);
  std::vector<uint64_t> aligned((r.got.size() + 7) / 8);
  std::memcpy(aligned.data(), r.got.data(), r.got.size());
  auto d = decode_frame(std::span<const std::byte>(reinterpret_cast<const std::byte*>(aligned.data()), r.got.size()),
                        b.id, node_id{1});
  ASSERT_TRUE(d) << d.error().to_string();
  EXPECT_EQ(d->type, decoded_frame::kind::reject);
  EXPECT_NE(d->reason.find("protocol version"), std::string::npos) << d->reason;
}

TEST_F(peer_transport, an_idle_connection_stays_up_on_keepalives_and_a_silent_one_is_closed) {
  auto fast = [](transport_config& c) {
    c.keepalive_interval = std::chrono::milliseconds(20);
    c.idle_timeout = std::chrono::milliseconds(200);
  };
  node& a = add_node(1, "test-cluster", fast);
  node& b = add_node(3, "test-cluster", fast);
  mesh();
  ASSERT_TRUE(run_until([&] { return a.t->connected(b.id); }));
  // Several idle timeouts pass with nothing to send: keepalives hold the connection.
  ASSERT_TRUE(run_until([&] { return b.t->stats().frames_received >= 30; }));
  EXPECT_EQ(a.t->stats().connections_dialed, 1U);
  EXPECT_EQ(a.t->stats().connections_closed, 0U);
  EXPECT_TRUE(b.got.empty());

  // A peer that completes the Hello and then says nothing is closed after the idle timeout (as
  // node 2: it replaces no other connection).
  raw_client r(io);
  r.sock.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), b.port));
  r.read_more();
  r.write(bytes_of(encode_hello(hello{"test-cluster", node_id{2}, 99, protocol_version})));
  ASSERT_TRUE(run_until([&] { return b.t->connected(node_id{2}); }));
  ASSERT_TRUE(run_until([&] { return r.eof; }));
  EXPECT_EQ(b.t->stats().connections_closed, 1U);
  EXPECT_TRUE(a.t->connected(b.id));  // the live one is untouched
}

}  // namespace
}  // namespace ferry::peer
