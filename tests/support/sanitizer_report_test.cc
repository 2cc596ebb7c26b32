// The harness turns a sanitizer report of a child process into a test failure: found in text, in
// a broker's ferryd.log (a stand-in ferryd that reports and exits), and in a tool's stderr.
#include "tests/support/sanitizer_report.h"

#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "tests/support/broker_process.h"
#include "tests/support/process.h"

namespace ferry::test {
namespace {

TEST(sanitizer_report, finds_each_sanitizer_and_nothing_in_a_clean_log) {
  EXPECT_FALSE(sanitizer_report("[info] ferryd started\n[warn] partition orders/0 is corrupt\n"));
  const char* reports[] = {
      "==12==ERROR: AddressSanitizer: heap-use-after-free on address 0x6020\n",
      "==12==ERROR: LeakSanitizer: detected memory leaks\n",
      "broker/log/log.cc:656:34: runtime error: signed integer overflow\n",
      "SUMMARY: UndefinedBehaviorSanitizer: undefined-behavior broker/log/log.cc:656:34\n",
      "WARNING: ThreadSanitizer: data race (pid=7)\n",
  };
  for (const char* r : reports) {
    auto found = sanitizer_report(std::string("[info] before\n") + r + "    #0 0x1 in frame\n");
    ASSERT_TRUE(found) << r;
    EXPECT_EQ(found->rfind(r, 0), 0u) << "the report starts at its first line: " << *found;
    EXPECT_NE(found->find("#0 0x1 in frame"), std::string::npos) << "the stack follows";
  }
}

// A stand-in for ferryd (FERRYD overrides the binary): it writes its ready file, prints an
// AddressSanitizer report to its log (stderr) and exits 1, as a sanitizer build does on an error.
class fake_ferryd : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("ferry-fake-ferryd-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    script_ = dir_ / "ferryd";
    std::ofstream(script_) << "#!/bin/sh\n"
                              "ready=\n"
                              "while [ $# -gt 0 ]; do [ \"$1\" = --ready-file ] && ready=$2; shift; done\n"
                              "echo \"==$$==ERROR: AddressSanitizer: heap-use-after-free on address 0x602\" >&2\n"
                              "echo '    #0 0x55 in ferry::partition::produce' >&2\n"
                              "printf '{\"pid\":%d,\"client_port\":1,\"http_port\":2}' $$ >\"$ready.tmp\"\n"
                              "mv \"$ready.tmp\" \"$ready\"\n"
                              "exit 1\n";
    ::chmod(script_.c_str(), 0755);
    ::setenv("FERRYD", script_.c_str(), 1);
  }
  void TearDown() override {
    ::unsetenv("FERRYD");
    std::filesystem::remove_all(dir_);
  }
  std::filesystem::path dir_;
  std::filesystem::path script_;
};

void run_reporting_broker() {
  broker_process b;
  EXPECT_TRUE(b.start());
  EXPECT_EQ(b.wait_exit(10s), 1);
}

TEST_F(fake_ferryd, a_sanitizer_report_in_the_broker_log_fails_the_test) {
  EXPECT_NONFATAL_FAILURE(run_reporting_broker(), "ERROR: AddressSanitizer: heap-use-after-free");
}

// The stand-in run as a tool (its path from FERRYD: EXPECT_NONFATAL_FAILURE's statement may not
// use the fixture's members).
void run_reporting_tool() {
  std::string script = std::getenv("FERRYD");
  auto r = run_process({script, "--ready-file", script + ".ready.json"}, "", {}, 10s);
  EXPECT_EQ(r.exit_code, 1) << r.describe();
}

TEST_F(fake_ferryd, a_sanitizer_report_on_a_tools_stderr_fails_the_test) {
  EXPECT_NONFATAL_FAILURE(run_reporting_tool(), "ERROR: AddressSanitizer: heap-use-after-free");
}

}  // namespace
}  // namespace ferry::test
