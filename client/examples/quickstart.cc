// Ferry quickstart: create a topic, publish 10 messages, read them back.
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
  return 0;
}
