#include "broker/partition/leader_services.h"

#include "broker/delay/delay_scheduler.h"
#include "broker/partition/subscription_host.h"

namespace ferry::partition {

void leader_services::start() {
  if (running_) return;
  running_ = true;
  subs_.start_delivery();
  if (delays_ != nullptr) delays_->set_releasing(true);
}

void leader_services::stop() {
  if (!running_) return;
  running_ = false;
  if (delays_ != nullptr) delays_->set_releasing(false);
  // Members' leases end with the engines; their messages are delivered again by the next leader.
  subs_.stop_delivery();
}

}  // namespace ferry::partition
