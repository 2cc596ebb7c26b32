// Writes the seed corpus of every fuzz target (tests/fuzz/corpus/<target>/): valid inputs built
// with the project's own encoders, so fuzzing starts from what real frames, batches, control
// records, checkpoints, delay index entries and segments look like. The committed files are this
// program's output; run it again after a format change:
//   build/tests/fuzz/fuzz_make_seeds tests/fuzz/corpus
// Deterministic: the same build writes the same bytes.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "broker/base/clock.h"
#include "broker/delay/codec.h"
#include "broker/log/log.h"
#include "broker/peer/codec.h"
#include "broker/subscription/control.h"
#include "broker/subscription/dispatcher.h"
#include "schema/frame.h"
#include "schema/main_guard.h"
#include "schema/record_batch.h"
#include "schema/varint.h"
#include "tests/fuzz/empty_port.h"

namespace fs = std::filesystem;
namespace w = ferry::wire;
namespace sub = ferry::subscription;
using bytes = std::vector<std::byte>;

namespace {

fs::path out_dir;
int written = 0;

void put(const std::string& target, const std::string& name, std::span<const std::byte> data) {
  auto dir = out_dir / target;
  fs::create_directories(dir);
  std::ofstream f(dir / name, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
  if (!f) {
    std::fprintf(stderr, "cannot write %s\n", (dir / name).c_str());
    std::exit(1);
  }
  ++written;
}

void append(bytes& out, std::span<const std::byte> b) { out.insert(out.end(), b.begin(), b.end()); }
void append(bytes& out, std::string_view s) {
  append(out, std::span(reinterpret_cast<const std::byte*>(s.data()), s.size()));
}
void le(bytes& out, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) out.push_back(static_cast<std::byte>(v >> (8 * i)));
}
bytes with_mode(uint8_t mode, std::span<const std::byte> b) {
  bytes out{static_cast<std::byte>(mode)};
  append(out, b);
  return out;
}

// ---- record batches --------------------------------------------------------------------------

bytes simple_batch() {
  w::batch_builder b;
  b.add(std::string_view("key"), std::string_view("value"), {}, 1'700'000'000'000);
  auto s = b.finish(-1, 0, -1);
  return bytes(s.begin(), s.end());
}

bytes rich_batch() {
  w::batch_builder b;
  std::vector<w::header_view> hs = {{"trace", std::string_view("abc")}, {"empty", std::nullopt}};
  b.add(std::string_view("k1"), std::string_view("first"), hs, 1'700'000'000'000);
  b.add(std::nullopt, std::string_view(""), {}, 1'700'000'000'005);
  b.add(std::string_view("k1"), std::nullopt, hs, 1'700'000'000'003);
  auto s = b.finish(77, 2, 10);
  return bytes(s.begin(), s.end());
}

bytes delayed_batch(bool relative) {
  w::batch_builder b;
  b.set_relative_delays(relative);
  b.add(std::string_view("k"), std::string_view("later"), {}, 1'700'000'000'000, relative ? 60'000 : 1'700'000'060'000);
  b.add(std::string_view("k"), std::string_view("now"), {}, 1'700'000'000'001);
  auto s = b.finish(-1, 0, -1);
  return bytes(s.begin(), s.end());
}

bytes released_batch() {
  w::batch_builder b;
  b.set_released(true);
  std::vector<w::header_view> hs = {{"ferry-delayed-id", std::string_view("orders/0/12")}};
  b.add(std::string_view("k"), std::string_view("released"), hs, 1'700'000'000'000, 1'700'000'060'000);
  auto s = b.finish(-1, 0, -1);
  bytes out(s.begin(), s.end());
  w::stamp_batch(out, 12, 1, 1'700'000'060'000);
  return out;
}

std::vector<sub::control_op> control_ops() {
  std::vector<sub::control_op> ops(4);
  ops[0].type = sub::control_type::ack;
  ops[0].sub_id = 11;
  ops[0].ranges = {{3, 5}, {9, 10}, {20, 120}};
  ops[1].type = sub::control_type::dead_letter;
  ops[1].sub_id = 11;
  ops[1].offset = 6;
  ops[1].delivery_count = 10;
  ops[1].reason = "max_deliveries (10) reached";
  ops[2].type = sub::control_type::seek;
  ops[2].sub_id = 12;
  ops[2].offset = 1000;
  ops[3].type = sub::control_type::cancel;
  ops[3].sub_id = 0;
  ops[3].offset = 44;
  ops[3].due = 1'700'000'060'000;
  return ops;
}

void record_batch_seeds() {
  put("record_batch", "simple", with_mode(0, simple_batch()));
  put("record_batch", "rich", with_mode(0, rich_batch()));
  put("record_batch", "rich_fixup", with_mode(1, rich_batch()));
  put("record_batch", "relative_delay", with_mode(0, delayed_batch(true)));
  put("record_batch", "absolute_delay", with_mode(1, delayed_batch(false)));
  put("record_batch", "released", with_mode(0, released_batch()));
  put("record_batch", "control", with_mode(0, sub::encode_control_batch(control_ops(), 1'700'000'000'000)));
}

// ---- control records -----------------------------------------------------------------------------

void control_record_seeds() {
  auto ops = control_ops();
  put("control_record", "batch_all_types", with_mode(0, sub::encode_control_batch(ops, 1'700'000'000'000)));
  for (size_t i = 0; i < ops.size(); ++i) {
    auto one = sub::encode_control_batch(std::span(ops).subspan(i, 1), 5);
    put("control_record", "batch_op" + std::to_string(i), with_mode(0, one));
    // The same operation as a value list (mode 1): [u8 length][value].
    bytes values{std::byte{1}};
    auto r = w::for_each_record(one, [&](const w::record_view& rv) {
      values.push_back(static_cast<std::byte>(rv.value->size()));
      append(values, *rv.value);
    });
    if (!r) std::exit(1);
    put("control_record", "values_op" + std::to_string(i), values);
  }
  std::vector<int64_t> single = {5};
  std::vector<int64_t> runs = {1, 2, 3, 10, 11, 400, 100000};
  bytes d1{std::byte{2}}, d2{std::byte{2}};
  append(d1, sub::encode_delivery_record(single));
  append(d2, sub::encode_delivery_record(runs));
  put("control_record", "delivery_single", d1);
  put("control_record", "delivery_runs", d2);
}

// ---- checkpoints -----------------------------------------------------------------------------------

ferry::meta::subscription_record sub_record() {
  ferry::meta::subscription_record r;
  r.topic = "fuzz";
  r.name = "s";
  r.id = 11;
  return r;
}

bytes checkpoint_input(uint8_t flags, uint32_t log_start, const std::string& blob,
                       const std::vector<std::string>& journal) {
  bytes out{static_cast<std::byte>(flags)};
  le(out, log_start, 4);
  le(out, blob.size(), 2);
  append(out, blob);
  for (const auto& j : journal) {
    out.push_back(static_cast<std::byte>(j.size()));
    append(out, j);
  }
  return out;
}

void checkpoint_seeds() {
  ferry::fuzz::empty_port port;
  {
    sub::dispatcher d(port, sub_record(), 0);
    put("checkpoint", "fresh", checkpoint_input(0, 0, d.checkpoint(0), {}));
  }
  {
    // Holes above the cursor, a dead letter, and delivery counts (restored from a checkpoint in the
    // format of schema/control.md, then written by checkpoint()).
    ferry::byte_writer bw;
    bw.u8(1);       // version
    bw.varint(40);  // applied_upto
    bw.varint(10);  // cursor
    bw.uvarint(0);  // no ranges
    bw.varint(1);   // dead-lettered
    bw.varint(0);   // expired
    bw.uvarint(2);  // delivery counts
    bw.uvarint(1);  // offset 11
    bw.uvarint(3);  //   3 deliveries
    bw.uvarint(4);  // offset 15
    bw.uvarint(1);  //   1 delivery
    sub::dispatcher d(port, sub_record(), 0);
    if (!d.restore(std::move(bw).str())) std::exit(1);
    std::vector<sub::control_op> ops(1);
    ops[0].type = sub::control_type::ack;
    ops[0].sub_id = 11;
    ops[0].ranges = {{12, 14}, {16, 30}};
    d.apply_control(30, 30, ops);
    std::string blob = d.checkpoint(31);
    std::vector<int64_t> round1 = {11, 15, 31, 32}, round2 = {11, 33};
    put("checkpoint", "holes_and_counts", checkpoint_input(0, 0, blob, {}));
    put("checkpoint", "with_journal",
        checkpoint_input(0, 0, blob, {sub::encode_delivery_record(round1), sub::encode_delivery_record(round2)}));
    put("checkpoint", "expired_below", checkpoint_input(1, 13, blob, {sub::encode_delivery_record(round1)}));
  }
}

// ---- delay index entries ------------------------------------------------------------------------

void delay_entry_seeds() {
  namespace d = ferry::delay;
  d::pending_message m;
  m.append_time = 1'700'000'000'000;
  m.timestamp = 1'699'999'999'990;
  m.key = "order-42";
  m.value = "payload";
  m.headers = {{"trace", std::string("abc")}, {"null", std::nullopt}};
  bytes a{std::byte{0}};
  append(a, d::encode_message(m));
  put("delay_entry", "message", a);
  d::pending_message bare;
  bytes b{std::byte{0}};
  append(b, d::encode_message(bare));
  put("delay_entry", "message_bare", b);
  bytes k{std::byte{1}};
  append(k, d::due_key({7, 3}, 1'700'000'060'000, 12345));
  put("delay_entry", "due_key", k);
  bytes kn{std::byte{1}};
  append(kn, d::due_key({7, 3}, -50, 1));
  put("delay_entry", "due_key_negative", kn);
  bytes o{std::byte{2}};
  append(o, d::encode_due(1'700'000'060'000));
  put("delay_entry", "due", o);
  bytes s{std::byte{3}};
  append(s, d::encode_state({100, 7}));
  put("delay_entry", "state", s);
}

// ---- segments ---------------------------------------------------------------------------------------

bytes read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  bytes out;
  append(out, s);
  return out;
}

std::string seg(int64_t base, const char* ext) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%020lld", static_cast<long long>(base));
  return std::string(buf) + ext;
}

// A log written by partition_log itself (manual clock: same bytes every run) in `dir`.
void write_log(const fs::path& dir, int batches, uint64_t segment_bytes, uint32_t interval) {
  static ferry::manual_clock clk;
  fs::remove_all(dir);
  ferry::log::log_config cfg;
  cfg.dir = dir;
  cfg.segment_bytes = segment_bytes;
  cfg.index_interval_bytes = interval;
  cfg.preallocate = false;
  cfg.clk = &clk;
  auto log = ferry::log::partition_log::open(cfg);
  if (!log) std::exit(1);
  for (int i = 0; i < batches; ++i) {
    w::batch_builder b;
    std::string v = "message " + std::to_string(i);
    b.add(std::string_view("k"), std::string_view(v), {}, 1'700'000'000'000 + i);
    if (i % 3 == 0) b.add(std::nullopt, std::string_view("second"), {}, 1'700'000'000'000 + i);
    auto s = b.finish(5, 0, i);
    bytes batch(s.begin(), s.end());
    if (!(*log)->append(batch, ferry::epoch{1})) std::exit(1);
  }
  auto ps = (*log)->begin_sync();
  auto r = ferry::log::partition_log::run_sync(ps);
  (*log)->end_sync(ps, r);
  if (!r || !(*log)->close()) std::exit(1);
}

void segment_seeds() {
  fs::path dir = fs::temp_directory_path() / ("ferry-fuzz-seeds-" + std::to_string(::getpid()));
  // One segment, index interval 64 (flags bits 4-6 = 2).
  write_log(dir, 8, 1 << 20, 64);
  bytes one{std::byte{2 << 4}};
  append(one, read_file(dir / seg(0, ".log")));
  put("segment_recovery", "one_segment", one);
  // A torn tail: half of a ninth batch.
  bytes torn = one;
  auto extra = rich_batch();
  w::stamp_batch(extra, 100, 1, 1'700'000'000'000);
  append(torn, std::span(extra).first(extra.size() / 2));
  put("segment_recovery", "torn_tail", torn);

  // Two segments (rolled at 400 bytes), with the first one's index files.
  write_log(dir, 8, 400, 64);
  std::vector<int64_t> bases;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".log") bases.push_back(std::stoll(e.path().stem().string()));
  std::sort(bases.begin(), bases.end());
  if (bases.size() < 2) std::exit(1);
  auto d1 = read_file(dir / seg(bases[0], ".log"));
  auto d2 = read_file(dir / seg(bases[1], ".log"));
  auto ix = read_file(dir / seg(bases[0], ".index"));
  auto tx = read_file(dir / seg(bases[0], ".timeindex"));
  bytes two{static_cast<std::byte>(1 | 2 | (2 << 4))};
  le(two, d1.size(), 4);
  le(two, static_cast<uint64_t>(bases[1]), 8);
  le(two, ix.size(), 2);
  le(two, tx.size(), 2);
  append(two, ix);
  append(two, tx);
  append(two, d1);
  append(two, d2);
  put("segment_recovery", "two_segments_indexed", two);
  bytes two_plain{static_cast<std::byte>(1 | (1 << 4))};
  le(two_plain, d1.size(), 4);
  le(two_plain, static_cast<uint64_t>(bases[1]), 8);
  append(two_plain, d1);
  append(two_plain, d2);
  put("segment_recovery", "two_segments", two_plain);

  // A log whose first segment starts at offset 1000 (flags bit 2).
  auto b = rich_batch();
  w::stamp_batch(b, 1000, 1, 1'700'000'000'000);
  bytes based{std::byte{4}};
  le(based, 1000, 8);
  append(based, b);
  put("segment_recovery", "base_1000", based);
  fs::remove_all(dir);
}

// ---- frames -------------------------------------------------------------------------------------

// The target's input: a flags byte (bit 0: fix up batch CRCs; 0 here) and the frame body
// (without its length prefix: the target adds it).
bytes body_of(flatbuffers::FlatBufferBuilder& fbb) {
  auto s = fbb.GetBufferSpan();
  bytes out{std::byte{0}};
  out.insert(out.end(), reinterpret_cast<const std::byte*>(s.data()) + w::frame_prefix_bytes,
             reinterpret_cast<const std::byte*>(s.data()) + s.size());
  return out;
}

template <class Make>
void request(const std::string& name, w::RequestBody type, Make make) {
  flatbuffers::FlatBufferBuilder fbb;
  auto body = make(fbb);
  w::finish_request(fbb, w::CreateRequest(fbb, 1, 7, type, body.Union()));
  auto b = body_of(fbb);
  put("request_frame", "req_" + name, b);
  if (type == w::RequestBody::ProduceRequest) {
    b[0] = std::byte{1};
    put("request_frame", "req_" + name + "_fix_crc", b);
  }
}

template <class Make>
void response(const std::string& name, w::ResponseBody type, Make make) {
  flatbuffers::FlatBufferBuilder fbb;
  auto body = make(fbb);
  auto msg = fbb.CreateString("");
  w::finish_response(fbb, w::CreateResponse(fbb, 7, w::ErrorCode::Ok, msg, 3, type, body.Union()));
  auto b = body_of(fbb);
  put("request_frame", "resp_" + name, b);
  if (type == w::ResponseBody::FetchResponse) {
    b[0] = std::byte{1};
    put("request_frame", "resp_" + name + "_fix_crc", b);
  }
}

void frame_seeds() {
  using F = flatbuffers::FlatBufferBuilder;
  request("metadata", w::RequestBody::MetadataRequest, [](F& f) {
    std::vector<flatbuffers::Offset<flatbuffers::String>> t = {f.CreateString("orders"), f.CreateString("a.b")};
    return w::CreateMetadataRequest(f, f.CreateVector(t));
  });
  request("create_topic", w::RequestBody::CreateTopicRequest, [](F& f) {
    auto n = f.CreateString("orders");
    return w::CreateCreateTopicRequest(f, n, w::CreateTopicConfig(f, 4, 1, 86'400'000, -1, 1 << 20));
  });
  request("list_topics", w::RequestBody::ListTopicsRequest, [](F& f) { return w::CreateListTopicsRequest(f); });
  request("describe_topic", w::RequestBody::DescribeTopicRequest,
          [](F& f) { return w::CreateDescribeTopicRequest(f, f.CreateString("orders")); });
  request("delete_topic", w::RequestBody::DeleteTopicRequest,
          [](F& f) { return w::CreateDeleteTopicRequest(f, f.CreateString("orders")); });
  request("produce", w::RequestBody::ProduceRequest, [](F& f) {
    auto b1 = rich_batch();
    auto b2 = delayed_batch(true);
    auto r1 = f.CreateVector(reinterpret_cast<const uint8_t*>(b1.data()), b1.size());
    auto r2 = f.CreateVector(reinterpret_cast<const uint8_t*>(b2.data()), b2.size());
    std::vector<flatbuffers::Offset<w::ProducePartition>> ps = {w::CreateProducePartition(f, 0, r1),
                                                                w::CreateProducePartition(f, 1, r2)};
    auto t = f.CreateString("orders");
    return w::CreateProduceRequest(f, t, w::Acks::Durable, 30000, f.CreateVector(ps));
  });
  request("fetch", w::RequestBody::FetchRequest, [](F& f) {
    std::vector<flatbuffers::Offset<w::FetchPartition>> ps = {w::CreateFetchPartition(f, 0, 0, 1 << 20),
                                                              w::CreateFetchPartition(f, 3, 1234, 4096)};
    auto t = f.CreateString("orders");
    return w::CreateFetchRequest(f, t, f.CreateVector(ps), 100, 1, 4 << 20);
  });
  request("create_subscription", w::RequestBody::CreateSubscriptionRequest, [](F& f) {
    auto t = f.CreateString("orders");
    auto n = f.CreateString("billing");
    auto dlq = f.CreateString("orders.billing.dlq");
    auto c = w::CreateSubscriptionConfig(f, w::StartPosition::Earliest, 30000, 10, true, w::BackoffKind::Exponential,
                                         1000, 60000, dlq);
    return w::CreateCreateSubscriptionRequest(f, t, n, c);
  });
  request("delete_subscription", w::RequestBody::DeleteSubscriptionRequest, [](F& f) {
    auto t = f.CreateString("orders");
    return w::CreateDeleteSubscriptionRequest(f, t, f.CreateString("billing"));
  });
  request("list_subscriptions", w::RequestBody::ListSubscriptionsRequest,
          [](F& f) { return w::CreateListSubscriptionsRequest(f, f.CreateString("orders")); });
  request("describe_subscription", w::RequestBody::DescribeSubscriptionRequest, [](F& f) {
    auto t = f.CreateString("orders");
    return w::CreateDescribeSubscriptionRequest(f, t, f.CreateString("billing"));
  });
  request("seek", w::RequestBody::SeekSubscriptionRequest, [](F& f) {
    auto t = f.CreateString("orders");
    auto n = f.CreateString("billing");
    return w::CreateSeekSubscriptionRequest(f, t, n, w::SeekTarget::Offset, 100, 2, true);
  });
  request("join", w::RequestBody::JoinRequest, [](F& f) {
    auto t = f.CreateString("orders");
    auto s = f.CreateString("billing");
    auto m = f.CreateString("worker-1");
    return w::CreateJoinRequest(f, t, s, m, 30000, 100, 1 << 20);
  });
  request("leave", w::RequestBody::LeaveRequest, [](F& f) { return w::CreateLeaveRequest(f, 42); });
  request("ack", w::RequestBody::AckRequest, [](F& f) {
    std::vector<int64_t> offs = {1, 2, 3, 10};
    std::vector<flatbuffers::Offset<w::PartitionOffsets>> acks = {
        w::CreatePartitionOffsets(f, 0, f.CreateVector(offs))};
    std::vector<flatbuffers::Offset<w::NackItem>> nacks = {w::CreateNackItem(f, 1, 7, 5000)};
    std::vector<flatbuffers::Offset<w::ExtendItem>> ext = {w::CreateExtendItem(f, 1, 8, -1)};
    return w::CreateAckRequest(f, 42, f.CreateVector(acks), f.CreateVector(nacks), f.CreateVector(ext), 10, 0);
  });
  request("cancel", w::RequestBody::CancelRequest,
          [](F& f) { return w::CreateCancelRequest(f, f.CreateString("orders"), 2, 99); });
  request("list_delayed", w::RequestBody::ListDelayedRequest,
          [](F& f) { return w::CreateListDelayedRequest(f, f.CreateString("orders"), -1, 1'700'000'000'000, 50); });

  response("fetch", w::ResponseBody::FetchResponse, [](F& f) {
    bytes recs = rich_batch();
    w::stamp_batch(recs, 0, 1, 1'700'000'000'000);
    auto c = sub::encode_control_batch(control_ops(), 1'700'000'000'000);
    w::stamp_batch(c, 3, 1, 1'700'000'000'000);
    append(recs, c);
    auto r = f.CreateVector(reinterpret_cast<const uint8_t*>(recs.data()), recs.size());
    auto e = f.CreateString("");
    std::vector<flatbuffers::Offset<w::FetchPartitionResult>> ps = {
        w::CreateFetchPartitionResult(f, 0, w::ErrorCode::Ok, e, 7, 0, r)};
    auto t = f.CreateString("orders");
    return w::CreateFetchResponse(f, t, f.CreateVector(ps));
  });
  response("delivery", w::ResponseBody::Delivery, [](F& f) {
    bytes b = rich_batch();
    // The first record, length prefix included, as the broker delivers it.
    size_t pos = w::batch_header_size;
    const std::byte* p = b.data() + pos;
    bool ok = true;
    uint64_t len = ferry::read_uvarint(p, b.data() + b.size(), ok);
    size_t rec_len = static_cast<size_t>(p - (b.data() + pos)) + len;
    auto rec = f.CreateVector(reinterpret_cast<const uint8_t*>(b.data() + pos), rec_len);
    std::vector<flatbuffers::Offset<w::DeliveredMessage>> ms = {
        w::CreateDeliveredMessage(f, 0, 5, 1, 1'700'000'000'000, 1'700'000'000'001, 0, rec)};
    auto t = f.CreateString("orders");
    auto s = f.CreateString("billing");
    return w::CreateDelivery(f, 42, t, s, f.CreateVector(ms));
  });
  response("metadata", w::ResponseBody::MetadataResponse, [](F& f) {
    std::vector<int32_t> replicas = {1, 2, 3};
    std::vector<flatbuffers::Offset<w::PartitionInfo>> ps = {
        w::CreatePartitionInfo(f, 0, 1, f.CreateVector(replicas), 4)};
    auto n = f.CreateString("orders");
    auto em = f.CreateString("");
    std::vector<flatbuffers::Offset<w::TopicMetadata>> ts = {
        w::CreateTopicMetadata(f, n, w::ErrorCode::Ok, em, f.CreateVector(ps))};
    auto host = f.CreateString("127.0.0.1");
    std::vector<flatbuffers::Offset<w::BrokerInfo>> bs = {w::CreateBrokerInfo(f, 1, host, 7070)};
    return w::CreateMetadataResponse(f, f.CreateVector(bs), f.CreateVector(ts), 1);
  });
  response("ack", w::ResponseBody::AckResponse, [](F& f) {
    std::vector<flatbuffers::Offset<w::AckFailure>> fs = {w::CreateAckFailure(f, 0, 3, w::ErrorCode::LeaseNotHeld)};
    auto fv = f.CreateVector(fs);
    return w::CreateAckResponse(f, 3, 1, 0, fv, f.CreateString("1 of 4 failed"));
  });
}

// peer_frame: frame bodies (without the length prefix) of every peer frame kind.
void peer_frame_seeds() {
  namespace c = ferry::consensus;
  auto put_body = [](const std::string& name, const ferry::peer::frame& f) {
    put("peer_frame", name, f.bytes().subspan(ferry::peer::frame_prefix_bytes));
  };
  put_body("hello", ferry::peer::encode_hello({"cluster", ferry::node_id{1}, 7, ferry::peer::protocol_version}));
  put_body("reject", ferry::peer::encode_reject("cluster id 'x' is not ours"));
  put_body("keepalive", ferry::peer::encode_keepalive());
  std::vector<ferry::peer::addressed_message> msgs;
  for (int t = 0; t <= static_cast<int>(c::msg_type::install_snapshot); ++t) {
    c::message m;
    m.type = static_cast<c::msg_type>(t);
    m.term = 3;
    m.last_index = m.prev_index = m.commit = m.match = m.durable = 10;
    m.last_term = m.prev_term = m.conflict_term = 2;
    m.conflict_index = 8;
    m.granted = m.transfer = true;
    m.sent_at = c::time_point(1000);
    m.entries = {c::entry{11, 3, c::entry_kind::normal, "value"}, c::entry{12, 3, c::entry_kind::config, "v=1,2"}};
    m.config.voters = {ferry::node_id{1}, ferry::node_id{2}};
    m.config.learners = {ferry::node_id{3}};
    msgs.push_back({static_cast<uint64_t>(t) + 1, m});
  }
  int i = 0;
  for (const auto& f : ferry::peer::encode_messages(msgs)) put_body("messages_" + std::to_string(i++), f);
}

}  // namespace

static int seeds_main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUTPUT_DIR   (e.g. tests/fuzz/corpus)\n", argv[0]);
    return 2;
  }
  spdlog::set_level(spdlog::level::off);
  out_dir = argv[1];
  frame_seeds();
  record_batch_seeds();
  control_record_seeds();
  checkpoint_seeds();
  delay_entry_seeds();
  segment_seeds();
  peer_frame_seeds();
  std::printf("wrote %d seed files under %s\n", written, out_dir.c_str());
  return 0;
}

int main(int argc, char** argv) { return ferry::guarded_main("fuzz_make_seeds", seeds_main, argc, argv); }
