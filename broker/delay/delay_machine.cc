#include "broker/delay/delay_machine.h"

#include <boost/asio/post.hpp>

#include "broker/delay/probe.h"
#include "broker/delay/release.h"
#include "broker/subscription/control.h"

namespace ferry::delay {

namespace asio = boost::asio;

delay_machine::delay_machine(delay_scheduler& s, asio::any_io_executor owner, asio::any_io_executor disk)
    : s_(s), owner_(std::move(owner)), disk_(std::move(disk)) {}

bool delay_machine::wants(const wire::batch_header& h, log::batch_hint hint) const {
  if ((h.attributes & (wire::attr_control | wire::attr_released)) != 0) return true;
  return hint == log::batch_hint::maybe_delays;
}

void delay_machine::apply(const wire::batch_header& h, std::span<const std::byte> batch) {
  if (subscription::is_control(h)) {
    (void)subscription::decode_control_batch(batch, [&](const subscription::control_op& op) {
      if (op.type != subscription::control_type::cancel) return;
      outcomes_[op.offset] = s_.on_cancelled(h.base_offset, op.offset, op.due);
      ++counts_.cancelled;
    });
    return;
  }
  if ((h.attributes & wire::attr_released) != 0) {
    auto keys = released_keys(batch);
    counts_.released += keys.size();
    s_.on_released(h.base_offset, keys);
    return;
  }
  auto msgs = delayed_records(batch);
  if (msgs.empty()) return;
  counts_.inserted += msgs.size();
  probe::get().delayed_scheduled.inc(msgs.size());
  s_.on_inserted(h.base_offset, std::move(msgs));
}

void delay_machine::committed(offset c) { s_.set_applied(c.value); }

// The cancel protocol. begin_cancel (request time) refuses a message already in a release batch
// and marks the others so that no release batch takes them until the cancel record is applied;
// it knows the due time of a message in memory or whose index write is in flight. Otherwise the
// index says whether it is pending (a lookup on the disk executor). A pending message gets a cancel
// record; applying it (in log order, after any release of the message) decides the outcome. A
// message that is not pending: the log says whether it ever was a delayed message.
void delay_machine::cancel(cancel_port& port, int64_t off, std::function<void(result<cancel_result>)> done) {
  auto answer = [&](cancel_outcome o, std::string why) {
    asio::post(owner_, [done, o, why = std::move(why)] { done(cancel_result{o, why}); });
  };
  std::string id = port.message_id(off);
  if (off < 0 || off >= port.high_watermark()) return answer(cancel_outcome::unknown, id + " is beyond the log end");
  auto pc = s_.begin_cancel(off);
  if (pc.answer) {
    return answer(*pc.answer, *pc.answer == cancel_outcome::cancelled ? id + " was cancelled already"
                                                                      : id + " is already due (released)");
  }
  if (pc.due) return finish_cancel(port, off, pc.due, false, std::move(done));
  // Not in memory: the index knows whether it is pending.
  auto* index = &s_.index();
  auto pk = s_.key();
  auto alive = alive_;
  auto* p = &port;
  asio::post(disk_, [this, alive, p, index, pk, off, done = std::move(done)]() mutable {
    auto due = index->due_of(pk, off);
    auto was = index->cancelled(pk, off);
    asio::post(owner_,
               [this, alive, p, off, due = std::move(due), was = std::move(was), done = std::move(done)]() mutable {
                 if (!*alive) return done(fail(errc::shutting_down, "the partition is closing"));
                 if (!due || !was) {
                   s_.end_cancel(off);
                   return done(!due ? due.error() : was.error());
                 }
                 finish_cancel(*p, off, *due, *was, std::move(done));
               });
  });
}

void delay_machine::finish_cancel(cancel_port& port, int64_t off, std::optional<int64_t> due, bool cancelled_before,
                                  std::function<void(result<cancel_result>)> done) {
  std::string id = port.message_id(off);
  if (!due) {
    s_.end_cancel(off);
    if (cancelled_before) return done(cancel_result{cancel_outcome::cancelled, id + " was cancelled already"});
    // Not pending: was it a delayed message at all? The log says, if it still has it.
    std::vector<std::byte> buf;
    if (off < port.log_start() || !port.read_batch(off, buf))
      return done(
          cancel_result{cancel_outcome::too_late, id + " is no longer in the log (delivered and retained no more)"});
    auto h = wire::parse_batch_header(buf);
    std::optional<cancel_result> res;
    if (h && subscription::is_control(*h)) {
      res = cancel_result{cancel_outcome::unknown, id + " is not a message (a control record)"};
    } else if (h) {
      auto bytes = std::span<const std::byte>(buf).first(static_cast<size_t>(h->batch_length));
      (void)wire::for_each_record(bytes, [&](const wire::record_view& rv) {
        if (rv.offset != off) return;
        if (h->attributes & wire::attr_released)
          res = cancel_result{cancel_outcome::too_late, id + " is a delayed message released when it fell due"};
        else if (rv.deliver_at && *rv.deliver_at > h->append_time)
          res = cancel_result{cancel_outcome::too_late, id + " is already due (released)"};
        else
          res = cancel_result{cancel_outcome::unknown, id + " is not a delayed message"};
      });
    }
    return done(res.value_or(cancel_result{cancel_outcome::unknown, id + " was not found"}));
  }
  auto alive = alive_;
  port.append_cancel(off, *due, [this, alive, off, id, done = std::move(done)](const result<void>& r) {
    if (!*alive) return done(fail(errc::shutting_down, "the partition is closing"));
    if (!r) {
      s_.end_cancel(off);
      return done(r.error());
    }
    auto it = outcomes_.find(off);
    cancel_outcome o = it == outcomes_.end() ? cancel_outcome::too_late : it->second;
    if (it != outcomes_.end()) outcomes_.erase(it);
    done(cancel_result{o, o == cancel_outcome::cancelled ? "" : id + " fell due before the cancel was recorded"});
  });
}

}  // namespace ferry::delay
