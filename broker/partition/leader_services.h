#pragma once
// leader_services: the work of a partition that only its leader does (DESIGN.md "Leases"):
// delivering to subscription members (the subscriptions' delivery engines: leases, ack timeouts,
// redeliveries, dead-letter moves) and releasing due delayed messages. Everything else (the log,
// the commit pipeline and the state machines it applies: subscription state, the delay index,
// producer state) runs on every replica whether it leads or not.
//
// start() and stop() may be called any number of times (leadership comes and goes); state
// survives them, so a new start picks up where the state machines are. Today a broker leads
// every partition it hosts: the partition starts its services once open; with replication,
// leadership (and the lease) will start and stop them.
//
// Threading: the partition's shard.
namespace ferry::delay {
class delay_scheduler;
}

namespace ferry::partition {

class subscription_host;

class leader_services {
 public:
  // Both outlive this object; `delays` may be null (delayed delivery off).
  leader_services(subscription_host& subs, delay::delay_scheduler* delays) : subs_(subs), delays_(delays) {}
  void set_delays(delay::delay_scheduler* delays) { delays_ = delays; }
  void start();
  void stop();
  bool running() const { return running_; }

 private:
  subscription_host& subs_;
  delay::delay_scheduler* delays_;
  bool running_ = false;
};

}  // namespace ferry::partition
