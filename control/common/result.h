// result.h - the one error policy of the control plane.
//
// Code that talks to the OS or parses input returns Result<T>: a value or an
// Error carrying a message that names what failed (and errno when there is
// one). No exceptions cross module boundaries; third-party code that throws
// (toml++) is caught at the module edge. Callers either handle the error or
// pass it up with context; main() prints it and exits non-zero.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace mlink {

struct Error {
  std::string message;
  int err = 0;  // errno, 0 when not an OS error
};

// Error from an errno-style return code (negative or positive errno).
Error os_error(std::string what, int err);

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT: implicit by design
  Result(Error error) : v_(std::move(error)) {}  // NOLINT: implicit by design
  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : err_(std::move(error)), ok_(false) {}  // NOLINT
  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const { return err_; }

 private:
  Error err_;
  bool ok_ = true;
};

using Status = Result<void>;

}  // namespace mlink
