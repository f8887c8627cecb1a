// A small, strict JSON parser (RFC 8259) for model-file headers.
//
// Strict because the input is untrusted: anything the RFC does not allow is an
// error (trailing commas, comments, leading zeros, NaN, invalid UTF-8, lone
// surrogates, duplicate object keys, content after the document). Fuzz-safe
// because nesting depth, value count, string length and input size are capped
// (recursion is bounded by the depth cap), and every error is a value carrying
// the byte offset where parsing stopped. No exceptions, no locale dependence
// (numbers go through std::from_chars).
#pragma once

#include <algorithm>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "salted/core/result.hpp"

namespace salted {
namespace json {

struct Limits {
    int max_depth = 64;                          // arrays/objects nested deeper are refused
    std::size_t max_bytes = std::size_t(64) << 20;  // whole document
    std::size_t max_values = std::size_t(1) << 20;  // values of any kind, all levels
    std::size_t max_string_bytes = std::size_t(1) << 20;
};

struct Member;

// One JSON value. Objects keep their members in document order; find() is a
// linear scan, meant for the small objects of a header.
class Value {
public:
    enum class Type { null, boolean, number, string, array, object };

    Value() = default;

    Type type() const { return type_; }
    bool is_null() const { return type_ == Type::null; }
    bool is_bool() const { return type_ == Type::boolean; }
    bool is_number() const { return type_ == Type::number; }
    bool is_string() const { return type_ == Type::string; }
    bool is_array() const { return type_ == Type::array; }
    bool is_object() const { return type_ == Type::object; }

    // The accessors return a neutral value (false, 0, empty) for another type;
    // check the type first when it matters.
    bool boolean() const { return type_ == Type::boolean && bool_; }
    double number() const { return type_ == Type::number ? number_ : 0.0; }
    // A number written without fraction or exponent that fits in int64.
    bool is_integer() const { return type_ == Type::number && is_integer_; }
    int64_t integer() const { return is_integer() ? integer_ : 0; }
    const std::string& string() const { return string_; }
    const std::vector<Value>& array() const { return array_; }
    inline const std::vector<Member>& object() const;
    // Elements of an array or members of an object; 0 otherwise.
    inline std::size_t size() const;
    // The member named `key` of an object, or nullptr.
    inline const Value* find(const std::string& key) const;

    static const char* type_name(Type t) {
        switch (t) {
            case Type::null: return "null";
            case Type::boolean: return "a boolean";
            case Type::number: return "a number";
            case Type::string: return "a string";
            case Type::array: return "an array";
            case Type::object: return "an object";
        }
        return "?";
    }
    // "an integer" for integral numbers, otherwise type_name(type()).
    const char* describe() const { return is_integer() ? "an integer" : type_name(type_); }

private:
    friend class Parser;
    Type type_ = Type::null;
    bool bool_ = false;
    bool is_integer_ = false;
    double number_ = 0.0;
    int64_t integer_ = 0;
    std::string string_;
    std::vector<Value> array_;
    std::vector<Member> object_;
};

struct Member {
    std::string key;
    Value value;
};

inline const std::vector<Member>& Value::object() const { return object_; }
inline std::size_t Value::size() const {
    return type_ == Type::array ? array_.size() : type_ == Type::object ? object_.size() : 0;
}
inline const Value* Value::find(const std::string& key) const {
    if (type_ != Type::object) return nullptr;
    for (const Member& m : object_)
        if (m.key == key) return &m.value;
    return nullptr;
}

class Parser {
public:
    Parser(const char* data, std::size_t size, const Limits& limits)
        : begin_(data), p_(data), end_(data + size), limits_(limits) {}

    Result<Value> parse() {
        if (static_cast<std::size_t>(end_ - begin_) > limits_.max_bytes)
            return make_error(Errc::parse_error, "json: document of %zu bytes exceeds the limit of %zu bytes",
                              static_cast<std::size_t>(end_ - begin_), limits_.max_bytes);
        Value v;
        skip_ws();
        if (!parse_value(v, 0)) return error_;
        skip_ws();
        if (p_ != end_) {
            fail_found("expected end of document");
            return error_;
        }
        return v;
    }

private:
    std::size_t offset() const { return static_cast<std::size_t>(p_ - begin_); }

    bool fail(const char* what) {
        error_ = make_error(Errc::parse_error, "json: byte %zu: %s", offset(), what);
        return false;
    }
    // "expected X, found 'c'" (or "found end of input").
    bool fail_found(const char* expected) {
        if (p_ >= end_)
            error_ = make_error(Errc::parse_error, "json: byte %zu: %s, found end of input", offset(), expected);
        else if (*p_ >= 0x20 && *p_ < 0x7f)
            error_ = make_error(Errc::parse_error, "json: byte %zu: %s, found '%c'", offset(), expected, *p_);
        else
            error_ = make_error(Errc::parse_error, "json: byte %zu: %s, found byte 0x%02x", offset(), expected,
                                static_cast<unsigned>(static_cast<unsigned char>(*p_)));
        return false;
    }

    void skip_ws() {
        while (p_ < end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r')) ++p_;
    }

    bool count_value() {
        if (++values_ > limits_.max_values) return fail("too many values (limit reached)");
        return true;
    }

    bool literal(const char* word, std::size_t n) {
        if (static_cast<std::size_t>(end_ - p_) < n || std::char_traits<char>::compare(p_, word, n) != 0)
            return fail_found("expected a value");
        p_ += n;
        return true;
    }

    bool parse_value(Value& v, int depth) {
        if (!count_value()) return false;
        if (p_ >= end_) return fail_found("expected a value");
        switch (*p_) {
            case '{': return parse_object(v, depth + 1);
            case '[': return parse_array(v, depth + 1);
            case '"': v.type_ = Value::Type::string; return parse_string(v.string_);
            case 't': v.type_ = Value::Type::boolean; v.bool_ = true; return literal("true", 4);
            case 'f': v.type_ = Value::Type::boolean; v.bool_ = false; return literal("false", 5);
            case 'n': v.type_ = Value::Type::null; return literal("null", 4);
            default:
                if (*p_ == '-' || (*p_ >= '0' && *p_ <= '9')) return parse_number(v);
                return fail_found("expected a value");
        }
    }

    bool parse_object(Value& v, int depth) {
        if (depth > limits_.max_depth) return fail("nesting deeper than the depth limit");
        v.type_ = Value::Type::object;
        ++p_;  // '{'
        skip_ws();
        if (p_ < end_ && *p_ == '}') {
            ++p_;
            return true;
        }
        for (;;) {
            if (p_ >= end_ || *p_ != '"') return fail_found("expected '\"' to start an object key");
            Member m;
            if (!parse_string(m.key)) return false;
            skip_ws();
            if (p_ >= end_ || *p_ != ':') return fail_found("expected ':' after an object key");
            ++p_;
            skip_ws();
            if (!parse_value(m.value, depth)) return false;
            v.object_.push_back(std::move(m));
            skip_ws();
            if (p_ < end_ && *p_ == ',') {
                ++p_;
                skip_ws();
                continue;
            }
            if (p_ < end_ && *p_ == '}') {
                ++p_;
                break;
            }
            return fail_found("expected ',' or '}' in an object");
        }
        // Duplicate keys make a document mean different things to different
        // readers; refuse them (sorted check: O(n log n) even for huge objects).
        std::vector<const std::string*> keys;
        keys.reserve(v.object_.size());
        for (const Member& m : v.object_) keys.push_back(&m.key);
        std::sort(keys.begin(), keys.end(), [](const std::string* a, const std::string* b) { return *a < *b; });
        for (std::size_t i = 1; i < keys.size(); ++i)
            if (*keys[i] == *keys[i - 1]) {
                error_ = make_error(Errc::parse_error, "json: byte %zu: duplicate object key \"%.64s\"",
                                    offset(), keys[i]->c_str());
                return false;
            }
        return true;
    }

    bool parse_array(Value& v, int depth) {
        if (depth > limits_.max_depth) return fail("nesting deeper than the depth limit");
        v.type_ = Value::Type::array;
        ++p_;  // '['
        skip_ws();
        if (p_ < end_ && *p_ == ']') {
            ++p_;
            return true;
        }
        for (;;) {
            v.array_.emplace_back();
            if (!parse_value(v.array_.back(), depth)) return false;
            skip_ws();
            if (p_ < end_ && *p_ == ',') {
                ++p_;
                skip_ws();
                continue;
            }
            if (p_ < end_ && *p_ == ']') {
                ++p_;
                return true;
            }
            return fail_found("expected ',' or ']' in an array");
        }
    }

    bool parse_number(Value& v) {
        const char* start = p_;
        bool integral = true;
        if (*p_ == '-') ++p_;
        if (p_ >= end_ || *p_ < '0' || *p_ > '9') return fail_found("expected a digit");
        if (*p_ == '0') {
            ++p_;
            if (p_ < end_ && *p_ >= '0' && *p_ <= '9') return fail("leading zeros are not allowed");
        } else {
            while (p_ < end_ && *p_ >= '0' && *p_ <= '9') ++p_;
        }
        if (p_ < end_ && *p_ == '.') {
            integral = false;
            ++p_;
            if (p_ >= end_ || *p_ < '0' || *p_ > '9') return fail_found("expected a digit after '.'");
            while (p_ < end_ && *p_ >= '0' && *p_ <= '9') ++p_;
        }
        if (p_ < end_ && (*p_ == 'e' || *p_ == 'E')) {
            integral = false;
            ++p_;
            if (p_ < end_ && (*p_ == '+' || *p_ == '-')) ++p_;
            if (p_ >= end_ || *p_ < '0' || *p_ > '9') return fail_found("expected a digit in the exponent");
            while (p_ < end_ && *p_ >= '0' && *p_ <= '9') ++p_;
        }
        v.type_ = Value::Type::number;
        double d = 0.0;
        auto r = std::from_chars(start, p_, d);
        if (r.ec != std::errc() || r.ptr != p_) {
            p_ = start;
            return fail("number out of the range of a double");
        }
        v.number_ = d;
        if (integral) {
            int64_t i = 0;
            auto ri = std::from_chars(start, p_, i);
            if (ri.ec == std::errc() && ri.ptr == p_) {
                v.is_integer_ = true;
                v.integer_ = i;
            }
        }
        return true;
    }

    static int hex_digit(char c) {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    }

    bool read_hex4(uint32_t& out) {
        if (end_ - p_ < 4) return fail_found("expected 4 hex digits after \\u");
        out = 0;
        for (int i = 0; i < 4; ++i) {
            const int d = hex_digit(p_[i]);
            if (d < 0) {
                p_ += i;
                return fail_found("expected a hex digit in \\u escape");
            }
            out = out * 16 + static_cast<uint32_t>(d);
        }
        p_ += 4;
        return true;
    }

    static void append_utf8(std::string& s, uint32_t cp) {
        if (cp < 0x80) {
            s += static_cast<char>(cp);
        } else if (cp < 0x800) {
            s += static_cast<char>(0xc0 | (cp >> 6));
            s += static_cast<char>(0x80 | (cp & 0x3f));
        } else if (cp < 0x10000) {
            s += static_cast<char>(0xe0 | (cp >> 12));
            s += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
            s += static_cast<char>(0x80 | (cp & 0x3f));
        } else {
            s += static_cast<char>(0xf0 | (cp >> 18));
            s += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
            s += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
            s += static_cast<char>(0x80 | (cp & 0x3f));
        }
    }

    // Validates one UTF-8 sequence starting at p_ (a byte >= 0x80) and copies it.
    bool copy_utf8(std::string& s) {
        const auto* u = reinterpret_cast<const unsigned char*>(p_);
        const std::size_t left = static_cast<std::size_t>(end_ - p_);
        std::size_t n;
        uint32_t cp;
        if (u[0] >= 0xc2 && u[0] <= 0xdf) { n = 2; cp = u[0] & 0x1f; }
        else if (u[0] >= 0xe0 && u[0] <= 0xef) { n = 3; cp = u[0] & 0x0f; }
        else if (u[0] >= 0xf0 && u[0] <= 0xf4) { n = 4; cp = u[0] & 0x07; }
        else return fail("invalid UTF-8 lead byte in a string");
        if (left < n) return fail("truncated UTF-8 sequence in a string");
        for (std::size_t i = 1; i < n; ++i) {
            if ((u[i] & 0xc0) != 0x80) return fail("invalid UTF-8 continuation byte in a string");
            cp = (cp << 6) | (u[i] & 0x3f);
        }
        if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000)) return fail("overlong UTF-8 sequence in a string");
        if (cp >= 0xd800 && cp <= 0xdfff) return fail("UTF-8 encoded surrogate in a string");
        if (cp > 0x10ffff) return fail("UTF-8 code point above U+10FFFF in a string");
        s.append(p_, n);
        p_ += n;
        return true;
    }

    bool parse_string(std::string& s) {
        ++p_;  // opening quote
        for (;;) {
            if (p_ >= end_) return fail_found("unterminated string: expected '\"'");
            if (s.size() > limits_.max_string_bytes) return fail("string longer than the string limit");
            const unsigned char c = static_cast<unsigned char>(*p_);
            if (c == '"') {
                ++p_;
                return true;
            }
            if (c < 0x20) return fail_found("expected a printable character in a string (control characters must be escaped)");
            if (c >= 0x80) {
                if (!copy_utf8(s)) return false;
                continue;
            }
            if (c != '\\') {
                s += static_cast<char>(c);
                ++p_;
                continue;
            }
            ++p_;
            if (p_ >= end_) return fail_found("expected an escape character after '\\'");
            const char e = *p_++;
            switch (e) {
                case '"': s += '"'; break;
                case '\\': s += '\\'; break;
                case '/': s += '/'; break;
                case 'b': s += '\b'; break;
                case 'f': s += '\f'; break;
                case 'n': s += '\n'; break;
                case 'r': s += '\r'; break;
                case 't': s += '\t'; break;
                case 'u': {
                    uint32_t cp;
                    if (!read_hex4(cp)) return false;
                    if (cp >= 0xdc00 && cp <= 0xdfff) return fail("lone low surrogate in \\u escape");
                    if (cp >= 0xd800 && cp <= 0xdbff) {
                        if (end_ - p_ < 2 || p_[0] != '\\' || p_[1] != 'u')
                            return fail("high surrogate in \\u escape without a following low surrogate");
                        p_ += 2;
                        uint32_t lo;
                        if (!read_hex4(lo)) return false;
                        if (lo < 0xdc00 || lo > 0xdfff) return fail("high surrogate followed by a non-low surrogate");
                        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                    }
                    append_utf8(s, cp);
                    break;
                }
                default:
                    --p_;
                    return fail_found("expected one of \" \\ / b f n r t u after '\\'");
            }
        }
    }

    const char* begin_;
    const char* p_;
    const char* end_;
    Limits limits_;
    std::size_t values_ = 0;
    Error error_;
};

// Parses a complete JSON document.
inline Result<Value> parse(const char* data, std::size_t size, const Limits& limits = Limits()) {
    return Parser(data, size, limits).parse();
}
inline Result<Value> parse(const std::string& text, const Limits& limits = Limits()) {
    return parse(text.data(), text.size(), limits);
}

}  // namespace json
}  // namespace salted
