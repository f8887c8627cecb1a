// Errors as values. salted never throws: every fallible public call returns a
// Status or a Result<T>, carrying an error code a program can branch on and a
// message a person can act on ("conv2d: groups: expected a divisor of
// in_channels=6, found 4").
#pragma once

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <string>
#include <type_traits>
#include <utility>

namespace salted {

enum class Errc {
    ok = 0,
    invalid_argument,  // a parameter is out of its valid domain
    shape_mismatch,    // a tensor's shape does not fit the operation
    out_of_range,      // an index or offset points outside its container
    out_of_memory,     // an allocation failed
    io_error,          // a file or stream could not be read or written
    parse_error,       // bytes do not follow the documented format
    unsupported,       // valid input that salted does not implement
    verify_failed,     // a checksum, hash or embedded test vector disagrees
};

inline const char* errc_name(Errc c) {
    switch (c) {
        case Errc::ok: return "ok";
        case Errc::invalid_argument: return "invalid_argument";
        case Errc::shape_mismatch: return "shape_mismatch";
        case Errc::out_of_range: return "out_of_range";
        case Errc::out_of_memory: return "out_of_memory";
        case Errc::io_error: return "io_error";
        case Errc::parse_error: return "parse_error";
        case Errc::unsupported: return "unsupported";
        case Errc::verify_failed: return "verify_failed";
    }
    return "unknown";
}

struct Error {
    Errc code = Errc::ok;
    std::string message;
};

// A Status is "ok" or an Error.
class [[nodiscard]] Status {
public:
    Status() = default;
    Status(Error e) : error_(std::move(e)) {}  // NOLINT: implicit on purpose
    static Status success() { return Status(); }

    bool ok() const { return error_.code == Errc::ok; }
    explicit operator bool() const { return ok(); }
    Errc code() const { return error_.code; }
    const std::string& message() const { return error_.message; }
    const Error& error() const { return error_; }

private:
    Error error_;
};

// Result<T> holds either a T or an Error. Accessing value() of an error result
// is a programming bug; it aborts with the message rather than reading garbage.
template <class T>
class [[nodiscard]] Result {
    static_assert(!std::is_reference<T>::value, "Result<T&> is not supported");

public:
    Result(T value) : has_value_(true) { new (&storage_) T(std::move(value)); }  // NOLINT
    Result(Error e) : error_(std::move(e)) {                                     // NOLINT
        if (error_.code == Errc::ok) error_.code = Errc::invalid_argument;
    }
    Result(Status s) : Result(s.error()) {}  // NOLINT: propagate a failed Status

    Result(Result&& o) noexcept : has_value_(o.has_value_), error_(std::move(o.error_)) {
        if (has_value_) new (&storage_) T(std::move(*o.ptr()));
    }
    Result& operator=(Result&& o) noexcept {
        if (this != &o) {
            reset();
            has_value_ = o.has_value_;
            error_ = std::move(o.error_);
            if (has_value_) new (&storage_) T(std::move(*o.ptr()));
        }
        return *this;
    }
    Result(const Result&) = delete;
    Result& operator=(const Result&) = delete;
    ~Result() { reset(); }

    bool ok() const { return has_value_; }
    explicit operator bool() const { return ok(); }
    Errc code() const { return has_value_ ? Errc::ok : error_.code; }
    const std::string& message() const { return error_.message; }
    const Error& error() const { return error_; }
    Status status() const { return has_value_ ? Status() : Status(error_); }

    T& value() & { check(); return *ptr(); }
    const T& value() const& { check(); return *ptr(); }
    T&& value() && { check(); return std::move(*ptr()); }
    T* operator->() { check(); return ptr(); }
    const T* operator->() const { check(); return ptr(); }
    T& operator*() & { check(); return *ptr(); }
    const T& operator*() const& { check(); return *ptr(); }

private:
    T* ptr() { return reinterpret_cast<T*>(&storage_); }
    const T* ptr() const { return reinterpret_cast<const T*>(&storage_); }
    void reset() {
        if (has_value_) ptr()->~T();
        has_value_ = false;
    }
    void check() const {
        if (!has_value_) {
            std::fprintf(stderr, "salted: value() of a failed Result: %s\n", error_.message.c_str());
            std::abort();
        }
    }

    bool has_value_ = false;
    Error error_;
    typename std::aligned_storage<sizeof(T), alignof(T)>::type storage_;
};

// Builds an Error from printf-style arguments: make_error(Errc::parse_error,
// "model: header: expected magic 'SALT', found '%.4s'", bytes).
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
inline Error make_error(Errc code, const char* fmt, ...) {
    char buf[512];
    va_list args;
    va_start(args, fmt);
    std::vsnprintf(buf, sizeof(buf), fmt, args);
    va_end(args);
    return Error{code, std::string(buf)};
}
}  // namespace salted

// Early return on failure, for use inside functions returning Status/Result.
#define SALTED_TRY(expr)                                   \
    do {                                                   \
        ::salted::Status salted_try_status_ = (expr);      \
        if (!salted_try_status_.ok()) return salted_try_status_.error(); \
    } while (0)

#define SALTED_CONCAT_INNER(a, b) a##b
#define SALTED_CONCAT(a, b) SALTED_CONCAT_INNER(a, b)
// SALTED_ASSIGN(auto x, make_thing()); unwraps a Result or returns its error.
#define SALTED_ASSIGN(decl, expr) SALTED_ASSIGN_IMPL(SALTED_CONCAT(salted_res_, __LINE__), decl, expr)
#define SALTED_ASSIGN_IMPL(tmp, decl, expr) \
    auto tmp = (expr);                      \
    if (!tmp.ok()) return tmp.error();      \
    decl = std::move(tmp).value()
