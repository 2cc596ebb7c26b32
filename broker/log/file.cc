// POSIX implementation of the log's file interface (broker/log/file.h).
#include "broker/log/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace ferry::log {
namespace {

error io_error(int err, std::string_view what, const std::filesystem::path& p) {
  std::string msg = std::string(what) + " '" + p.string() + "': " + std::strerror(err);
  // ENOSPC (and EDQUOT, a quota is a full disk for us) is the one failure the log survives.
  return fail(err == ENOSPC || err == EDQUOT ? errc::disk_full : errc::storage_error, std::move(msg));
}

class posix_file final : public file {
 public:
  posix_file(int fd, std::filesystem::path p) : fd_(fd), path_(std::move(p)) {}
  ~posix_file() override { ::close(fd_); }
  posix_file(const posix_file&) = delete;
  posix_file& operator=(const posix_file&) = delete;

  result<void> pwrite_all(std::span<const std::byte> data, uint64_t pos) override {
    while (!data.empty()) {
      ssize_t n = ::pwrite(fd_, data.data(), data.size(), static_cast<off_t>(pos));
      if (n < 0) {
        if (errno == EINTR) continue;
        return io_error(errno, "write", path_);
      }
      if (n == 0) return io_error(EIO, "write (no progress)", path_);
      data = data.subspan(static_cast<size_t>(n));
      pos += static_cast<uint64_t>(n);
    }
    return {};
  }

  result<size_t> pread(std::span<std::byte> out, uint64_t pos) override {
    size_t done = 0;
    while (done < out.size()) {
      ssize_t n = ::pread(fd_, out.data() + done, out.size() - done, static_cast<off_t>(pos + done));
      if (n < 0) {
        if (errno == EINTR) continue;
        return io_error(errno, "read", path_);
      }
      if (n == 0) break;  // end of file
      done += static_cast<size_t>(n);
    }
    return done;
  }

  result<void> datasync() override {
    // Never retried: after a failed fdatasync the kernel may have dropped the dirty pages, so a
    // second call could succeed without the data being on disk.
    if (::fdatasync(fd_) != 0) return io_error(errno, "fdatasync", path_);
    return {};
  }

  result<void> truncate(uint64_t size) override {
    int rc;
    do rc = ::ftruncate(fd_, static_cast<off_t>(size));
    while (rc != 0 && errno == EINTR);
    if (rc != 0) return io_error(errno, "truncate", path_);
    return {};
  }

  result<void> preallocate(uint64_t size) override {
    // Mode 0: allocates blocks and extends the file size, so the tail reads as zeros.
    int rc;
    do rc = ::fallocate(fd_, 0, 0, static_cast<off_t>(size));
    while (rc != 0 && errno == EINTR);
    if (rc != 0) {
      if (errno == EOPNOTSUPP || errno == ENOSYS) return {};  // the file system cannot: harmless
      return io_error(errno, "fallocate", path_);
    }
    return {};
  }

  result<uint64_t> size() override {
    struct stat st {};
    if (::fstat(fd_, &st) != 0) return io_error(errno, "stat", path_);
    return static_cast<uint64_t>(st.st_size);
  }

  result<uint64_t> next_data(uint64_t pos) override {
    off_t r = ::lseek(fd_, static_cast<off_t>(pos), SEEK_DATA);
    if (r >= 0) return static_cast<uint64_t>(r);
    if (errno == ENXIO) return size();  // only holes (or preallocated, unwritten space) from pos on
    if (errno == EINVAL || errno == EOPNOTSUPP) return pos;  // the file system cannot tell
    return io_error(errno, "seek data", path_);
  }

 private:
  int fd_;
  std::filesystem::path path_;
};

class posix_factory final : public file_factory {
 public:
  result<std::shared_ptr<file>> open(const std::filesystem::path& p, open_mode mode) override {
    int flags = O_RDWR | O_CLOEXEC | (mode == open_mode::create ? O_CREAT : 0);
    int fd;
    do fd = ::open(p.c_str(), flags, 0644);
    while (fd < 0 && errno == EINTR);
    if (fd < 0) return io_error(errno, "open", p);
    return std::shared_ptr<file>(std::make_shared<posix_file>(fd, p));
  }

  result<void> remove(const std::filesystem::path& p) override {
    // A missing file counts as removed: deletion is repeated after a crash (retention, recovery).
    if (::unlink(p.c_str()) != 0 && errno != ENOENT) return io_error(errno, "unlink", p);
    return {};
  }

  result<void> rename(const std::filesystem::path& from, const std::filesystem::path& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) return io_error(errno, "rename to '" + to.string() + "'", from);
    return {};
  }

  result<bool> create_dir(const std::filesystem::path& dir) override {
    if (::mkdir(dir.c_str(), 0755) == 0) return true;
    if (errno == EEXIST) {
      struct stat st {};
      if (::stat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return false;
      return io_error(ENOTDIR, "create directory", dir);
    }
    return io_error(errno, "create directory", dir);
  }

  result<void> sync_dir(const std::filesystem::path& dir) override {
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return io_error(errno, "open directory", dir);
    int rc = ::fsync(fd);
    int err = errno;
    ::close(fd);
    if (rc != 0) return io_error(err, "fsync directory", dir);
    return {};
  }
};

}  // namespace

file_factory& posix_files() {
  static posix_factory f;
  return f;
}

}  // namespace ferry::log
