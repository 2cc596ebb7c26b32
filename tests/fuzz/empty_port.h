#pragma once
// A partition_port over an empty log, for the checkpoint fuzz target and its seed generator: a
// dispatcher can be built, restored, fed control operations and checkpointed against it. Posted
// work (dispatch passes) is dropped, so nothing ever reads, appends, dead-letters or delivers;
// a dispatcher that tried anyway fails a FERRY_ASSERT.
#include <boost/asio/io_context.hpp>
#include <string>
#include <vector>

#include "broker/base/assert.h"
#include "broker/base/clock.h"
#include "broker/scheduler/wheel_driver.h"
#include "broker/subscription/dispatcher.h"

namespace ferry::fuzz {

class empty_port final : public subscription::partition_port {
 public:
  empty_port()
      : driver_(io_.get_executor(), clock_,
                [](scheduler::timer_entry& e) { static_cast<subscription::timed_entry&>(e).on_fire(); }) {}
  const std::string& topic() const override { return topic_; }
  int32_t partition_number() const override { return 0; }
  int64_t high_watermark() const override { return 0; }
  int64_t log_start() const override { return 0; }
  result<void> read(int64_t, size_t, std::vector<std::byte>&) override {
    FERRY_ASSERT(false, "the dispatcher read the log");
    return {};
  }
  void append_control(std::vector<subscription::control_op>, std::function<void(result<void>)>) override {
    FERRY_ASSERT(false, "the dispatcher appended a control batch");
  }
  void dead_letter(subscription::dead_letter_request, std::function<void(result<void>)>) override {
    FERRY_ASSERT(false, "the dispatcher dead-lettered a message");
  }
  scheduler::wheel_driver& timers() override { return driver_; }
  const ferry::clock& clock() const override { return clock_; }
  void post(std::function<void()>) override {}  // a dispatch pass: there is nothing to dispatch
  void record_deliveries(uint64_t, std::span<const int64_t>, std::function<void()>) override {
    FERRY_ASSERT(false, "the dispatcher journaled deliveries");
  }

 private:
  std::string topic_ = "fuzz";
  boost::asio::io_context io_;
  manual_clock clock_;
  scheduler::wheel_driver driver_;
};

}  // namespace ferry::fuzz
