// Ferry quickstart: create a topic and a subscription, publish 10 messages, read them back from
// the raw log, then consume them as a member of the subscription and ack each one.
//
//   ferryd --data-dir /tmp/ferry --listen 127.0.0.1:7070 &
//   ferry-quickstart [host:port]        (default: $FERRY_BOOTSTRAP, else 127.0.0.1:7070)
//
// Every client call returns ferry::result<T>: check it, then use *r or r->.
#include <cstdio>

#include "ferry/client/client.h"

namespace fc = ferry::client;

int main(int argc, char** argv) {
  fc::client_options opts;
  opts.bootstrap = argc > 1 ? argv[1] : fc::default_bootstrap();
  const std::string topic = "quickstart";

  // 1. Create the topic (one partition). If it exists already, keep going.
  auto admin = fc::admin::create(opts);
  if (!admin) return std::fprintf(stderr, "%s\n", admin.error().to_string().c_str()), 1;
  fc::topic_config cfg;
  cfg.partitions = 1;
  if (auto r = (*admin)->create_topic(topic, cfg); !r && r.error().code != ferry::errc::topic_exists)
    return std::fprintf(stderr, "create topic: %s\n", r.error().to_string().c_str()), 1;
  // A subscription gets every message published after it exists (start_position::latest, the
  // default) or every retained one (earliest). Its progress is kept by the broker.
  fc::subscription_config scfg;
  scfg.start = fc::start_position::earliest;
  scfg.ack_timeout = std::chrono::seconds(10);  // unacked for 10 s: redelivered
  if (auto r = (*admin)->create_subscription(topic, "quickstart-sub", scfg);
      !r && r.error().code != ferry::errc::subscription_exists)
    return std::fprintf(stderr, "create subscription: %s\n", r.error().to_string().c_str()), 1;

  // 2. Publish 10 messages. send() only queues; each callback runs on the producer's I/O thread
  //    once the broker has stored the message durably (or with the final error).
  fc::producer_options popts;
  popts.bootstrap = opts.bootstrap;
  auto producer = fc::producer::create(popts);
  if (!producer) return std::fprintf(stderr, "%s\n", producer.error().to_string().c_str()), 1;
  for (int i = 0; i < 10; ++i) {
    fc::message m;
    m.key = "order-" + std::to_string(i % 3);  // same key, same partition, kept in order
    m.value = "hello " + std::to_string(i);
    m.headers.emplace_back("source", "quickstart");
    (*producer)->send(topic, std::move(m), [](const ferry::result<fc::message_id>& r) {
      if (r)
        std::printf("stored %s\n", r->to_string().c_str());
      else
        std::fprintf(stderr, "failed: %s\n", r.error().to_string().c_str());
    });
  }
  // flush() returns when every callback above has run.
  if (auto r = (*producer)->flush(); !r) return std::fprintf(stderr, "flush: %s\n", r.error().to_string().c_str()), 1;
  (*producer)->close();

  // 3. Read partition 0 from the beginning until we reach the end we saw at the start.
  auto reader = fc::reader::create(opts, topic, 0, fc::reader::earliest);
  if (!reader) return std::fprintf(stderr, "%s\n", reader.error().to_string().c_str()), 1;
  auto desc = (*admin)->describe_topic(topic);
  if (!desc) return std::fprintf(stderr, "%s\n", desc.error().to_string().c_str()), 1;
  const int64_t end = desc->partitions.at(0).high_watermark;
  while ((*reader)->position() < end) {
    auto batch = (*reader)->poll(std::chrono::seconds(1));  // waits up to 1 s for new messages
    if (!batch) return std::fprintf(stderr, "read: %s\n", batch.error().to_string().c_str()), 1;
    for (const auto& m : *batch)
      std::printf("%s key=%s value=%s\n", m.id().c_str(), m.key.value_or("").c_str(), m.value.value_or("").c_str());
  }

  // 4. Consume through the subscription. The broker pushes messages to the member (at most
  //    credit_messages ahead of poll()); each is leased to this member until acked. ack() is
  //    asynchronous and batched; its callback (optional) runs on the consumer's I/O thread.
  //    What is not acked before the ack timeout, or when the member leaves, is redelivered.
  fc::consumer_options copts;
  copts.bootstrap = opts.bootstrap;
  copts.member_name = "quickstart";
  auto consumer = fc::consumer::create(copts, topic, "quickstart-sub");
  if (!consumer) return std::fprintf(stderr, "join: %s\n", consumer.error().to_string().c_str()), 1;
  int received = 0;
  for (int idle = 0; received < 10 && idle < 5;) {
    auto batch = (*consumer)->poll(std::chrono::seconds(1));  // up to 1 s for the next messages
    if (!batch) return std::fprintf(stderr, "consume: %s\n", batch.error().to_string().c_str()), 1;
    idle = batch->empty() ? idle + 1 : 0;
    for (const auto& d : *batch) {
      std::printf("consumed %s (delivery %d) value=%s\n", d.id().c_str(), d.delivery_count,
                  d.value.value_or("").c_str());
      (*consumer)->ack(d, [id = d.id()](const ferry::result<void>& r) {
        if (!r) std::fprintf(stderr, "ack of %s failed: %s\n", id.c_str(), r.error().to_string().c_str());
      });
      ++received;
    }
  }
  // flush() waits for the broker's answer to every ack; close() flushes and leaves.
  if (auto r = (*consumer)->flush(); !r) return std::fprintf(stderr, "ack: %s\n", r.error().to_string().c_str()), 1;
  (*consumer)->close();
  return 0;
}
