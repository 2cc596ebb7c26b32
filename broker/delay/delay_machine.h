#pragma once
// delay_machine: a partition's delay index as a state machine of its committed log
// (log/state_machine.h), and the cancel protocol that goes with it (schema/delay.md "Cancel").
//
// Applied from committed batches, in offset order, by the same code on the live path and at
// start-up: a producer batch's delayed records are inserted; a release batch removes the originals
// it names; a cancel record (a control batch) removes its message, and the outcome (cancelled, or
// too late) is decided right there, in log order, for the caller of cancel() to read.
//
// cancel() answers exactly one outcome per message: cancelled (the cancel record was applied
// before any release of the message), too_late (it was released, or is being released), unknown
// (not a delayed message of this partition). See the .cc for the protocol.
//
// Threading: the partition's executor; the index lookups of cancel() run on `disk`.
#include <boost/asio/any_io_executor.hpp>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "broker/delay/delay_scheduler.h"
#include "broker/log/state_machine.h"
#include "schema/result.h"

namespace ferry::delay {

struct cancel_result {
  cancel_outcome outcome = cancel_outcome::unknown;
  std::string message;
};

// What cancel() needs of its partition.
class cancel_port {
 public:
  virtual ~cancel_port() = default;
  virtual std::string message_id(int64_t offset) const = 0;  // "topic/partition/offset"
  virtual int64_t high_watermark() const = 0;
  virtual int64_t log_start() const = 0;
  // The whole batch holding `offset` (the first batch read from there), below the high-water mark.
  [[nodiscard]] virtual result<void> read_batch(int64_t offset, std::vector<std::byte>& out) = 0;
  // Appends the cancel control record; `done` once it is committed and applied (or failed).
  virtual void append_cancel(int64_t offset, int64_t due, std::function<void(result<void>)> done) = 0;
};

class delay_machine final : public log::state_machine {
 public:
  // `s` outlives the machine. `owner` is the partition's executor, `disk` where index lookups run.
  delay_machine(delay_scheduler& s, boost::asio::any_io_executor owner, boost::asio::any_io_executor disk);

  bool wants(const wire::batch_header& h, log::batch_hint hint) const override;
  void apply(const wire::batch_header& h, std::span<const std::byte> batch) override;
  void committed(offset c) override;

  // Cancels the delayed message at `offset`; `done` runs on the owner executor with the outcome.
  void cancel(cancel_port& port, int64_t offset, std::function<void(result<cancel_result>)> done);

  // What start-up replay applied (for its log line).
  struct counts {
    size_t inserted = 0, released = 0, cancelled = 0;
  };
  const counts& applied_counts() const { return counts_; }

 private:
  void finish_cancel(cancel_port& port, int64_t offset, std::optional<int64_t> due, bool cancelled_before,
                     std::function<void(result<cancel_result>)> done);

  delay_scheduler& s_;
  boost::asio::any_io_executor owner_;
  boost::asio::any_io_executor disk_;
  std::unordered_map<int64_t, cancel_outcome> outcomes_;  // decided at apply, read by the canceller
  counts counts_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);

 public:
  ~delay_machine() override { *alive_ = false; }
  delay_machine(const delay_machine&) = delete;
  delay_machine& operator=(const delay_machine&) = delete;
};

}  // namespace ferry::delay
