#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "salted/io/json.hpp"

using namespace salted;

namespace {

json::Value parse_ok(const std::string& text) {
    auto r = json::parse(text);
    REQUIRE_MESSAGE(r.ok(), text << " -> " << r.message());
    return std::move(r).value();
}

std::string parse_error(const std::string& text, const json::Limits& limits = json::Limits()) {
    auto r = json::parse(text, limits);
    CHECK_MESSAGE(!r.ok(), "accepted invalid JSON: " << text);
    if (r.ok()) return std::string();
    CHECK(r.code() == Errc::parse_error);
    CHECK(r.message().find("json: ") == 0);
    return r.message();
}

}  // namespace

TEST_CASE("json: literals, numbers and strings") {
    CHECK(parse_ok("null").is_null());
    CHECK(parse_ok("true").boolean());
    CHECK(parse_ok(" \t\r\nfalse ").is_bool());
    CHECK(!parse_ok("false").boolean());

    auto i = parse_ok("-42");
    CHECK(i.is_integer());
    CHECK(i.integer() == -42);
    CHECK(i.number() == -42.0);
    CHECK(parse_ok("0").integer() == 0);
    CHECK(parse_ok("-0").is_integer());
    CHECK(parse_ok("9223372036854775807").integer() == INT64_MAX);
    auto big = parse_ok("9223372036854775808");  // a valid number, not an int64
    CHECK(big.is_number());
    CHECK(!big.is_integer());
    CHECK(big.number() == doctest::Approx(9.223372036854775808e18));

    auto f = parse_ok("1.5e3");
    CHECK(f.is_number());
    CHECK(!f.is_integer());
    CHECK(f.number() == 1500.0);
    CHECK(parse_ok("0.009999999776482582").number() == 0.009999999776482582);
    CHECK(parse_ok("-2.5E-2").number() == -0.025);
    CHECK(parse_ok("1E+2").number() == 100.0);
    CHECK(!parse_ok("3.0").is_integer());  // written as a float: not an integer

    CHECK(parse_ok("\"\"").string().empty());
    CHECK(parse_ok("\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\"").string() == "a\"b\\c/d\b\f\n\r\t");
    CHECK(parse_ok("\"\\u00e9\"").string() == "\xc3\xa9");
    CHECK(parse_ok("\"\\u20AC\"").string() == "\xe2\x82\xac");
    CHECK(parse_ok("\"\\ud83d\\ude00\"").string() == "\xf0\x9f\x98\x80");  // surrogate pair
    CHECK(parse_ok("\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"").string() == "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
    CHECK(parse_ok("\"\\u0000\"").string() == std::string(1, '\0'));
}

TEST_CASE("json: arrays and objects keep document order") {
    auto v = parse_ok(R"({"b": [1, 2.5, "x", true, null, [], {}], "a": {"k": -1}, "": 0})");
    REQUIRE(v.is_object());
    REQUIRE(v.size() == 3);
    CHECK(v.object()[0].key == "b");
    CHECK(v.object()[1].key == "a");
    CHECK(v.object()[2].key.empty());
    const json::Value* b = v.find("b");
    REQUIRE(b);
    REQUIRE(b->is_array());
    REQUIRE(b->size() == 7);
    CHECK(b->array()[0].integer() == 1);
    CHECK(b->array()[1].number() == 2.5);
    CHECK(b->array()[2].string() == "x");
    CHECK(b->array()[3].boolean());
    CHECK(b->array()[4].is_null());
    CHECK(b->array()[5].is_array());
    CHECK(b->array()[5].size() == 0);
    CHECK(b->array()[6].is_object());
    CHECK(v.find("a")->find("k")->integer() == -1);
    CHECK(v.find("missing") == nullptr);
    CHECK(b->find("b") == nullptr);  // not an object
    // Accessors of the wrong type give neutral values, never garbage.
    CHECK(b->integer() == 0);
    CHECK(b->string().empty());
    CHECK(v.find("a")->array().empty());
    CHECK(std::string(b->describe()) == "an array");
    CHECK(std::string(b->array()[0].describe()) == "an integer");
}

TEST_CASE("json: every class of malformed input is an error") {
    const std::vector<std::string> bad = {
        "", " ", "\t\n",                                   // no document
        "nul", "tru", "fals", "True", "NULL", "nulll",     // misspelt literals
        "NaN", "Infinity", "-Infinity", "undefined",
        "01", "-01", "+1", ".5", "1.", "1.e3", "1e", "1e+", "-", "--1", "0x10", "1_000",  // number grammar
        "1e400", "-1e400",                                 // out of double range
        "\"abc", "\"\\", "\"\\x\"", "\"\\u12\"", "\"\\u12G4\"", "\"\\U0041\"",  // strings
        "\"a\nb\"", std::string("\"a\0b\"", 5), "\"\x1f\"",      // raw control characters
        "\"\\ud800\"", "\"\\udc00\"", "\"\\ud800\\u0041\"", "\"\\ud800x\"",  // lone surrogates
        "\"\xc0\x80\"", "\"\xe0\x80\x80\"", "\"\xf0\x80\x80\x80\"",          // overlong UTF-8
        "\"\xed\xa0\x80\"", "\"\xf4\x90\x80\x80\"", "\"\xf8\x88\x80\x80\x80\"",  // surrogate, > U+10FFFF, 5-byte
        "\"\x80\"", "\"\xc3\"", "\"\xe2\x82\"", "\"\xc3(\"",                  // stray/truncated sequences
        "'single'", "[1,]", "[,1]", "[1 2]", "[1,,2]", "[", "]", "[1", "[1,",  // arrays
        "{,}", "{\"a\":1,}", "{\"a\" 1}", "{\"a\":}", "{a:1}", "{'a':1}", "{1:2}", "{\"a\":1 \"b\":2}",
        "{", "}", "{\"a\"", "{\"a\":", "{\"a\":1",
        "{\"a\":1,\"a\":2}",                                 // duplicate key
        "{\"k\":{\"x\":1,\"y\":2,\"x\":3}}",                 // duplicate key, nested
        "1 2", "{} {}", "[]]", "null x", "true,",            // content after the document
        "\xef\xbb\xbf{}",                                    // byte-order mark
        "// comment\n{}", "{/* c */}", "[1] // c",
    };
    for (const auto& text : bad) {
        INFO("input: " << text);
        parse_error(text);
    }
}

TEST_CASE("json: errors name the byte offset and what was found") {
    CHECK(parse_error("[1, 2,]") == "json: byte 6: expected a value, found ']'");
    CHECK(parse_error("{\"a\" 1}") == "json: byte 5: expected ':' after an object key, found '1'");
    CHECK(parse_error("[1") == "json: byte 2: expected ',' or ']' in an array, found end of input");
    CHECK(parse_error("\"a\x01\"") == "json: byte 2: expected a printable character in a string (control "
                                      "characters must be escaped), found byte 0x01");
    CHECK(parse_error("01") == "json: byte 1: leading zeros are not allowed");
    CHECK(parse_error("{\"k\":1,\"k\":2}").find("duplicate object key \"k\"") != std::string::npos);
    CHECK(parse_error("null x") == "json: byte 5: expected end of document, found 'x'");
}

TEST_CASE("json: nesting depth is capped without exhausting the stack") {
    json::Limits limits;
    limits.max_depth = 64;
    auto nest = [](int depth) { return std::string(depth, '[') + std::string(depth, ']'); };
    CHECK(json::parse(nest(64), limits).ok());
    CHECK(parse_error(nest(65), limits).find("depth limit") != std::string::npos);
    std::string objs;
    for (int i = 0; i < 65; ++i) objs += "{\"a\":";
    objs += "1" + std::string(65, '}');
    CHECK(parse_error(objs, limits).find("depth limit") != std::string::npos);
    // A million unclosed brackets: refused at the cap, not by a stack overflow.
    CHECK(parse_error(std::string(1000000, '['), limits).find("depth limit") != std::string::npos);
    CHECK(parse_error(std::string(1000000, '{'), limits).find("expected '\"'") != std::string::npos);
}

TEST_CASE("json: value count, string length and document size are capped") {
    json::Limits limits;
    limits.max_values = 10;
    CHECK(json::parse("[1,2,3,4,5,6,7,8,9]", limits).ok());  // 10 values with the array
    CHECK(parse_error("[1,2,3,4,5,6,7,8,9,10]", limits).find("too many values") != std::string::npos);
    limits = json::Limits();
    limits.max_string_bytes = 8;
    CHECK(json::parse("\"12345678\"", limits).ok());
    CHECK(parse_error("\"123456789A\"", limits).find("string limit") != std::string::npos);
    limits = json::Limits();
    limits.max_bytes = 4;
    CHECK(json::parse("[12]", limits).ok());
    CHECK(parse_error("[123]", limits).find("exceeds the limit") != std::string::npos);
}

TEST_CASE("json: every truncation of a document is an error") {
    const std::string doc =
        R"({"op":"conv2d","name":"conv1.Conv","attrs":{"kernel":[5,5],"pad":[0,0,0,0],"slope":0.009999999776482582,)"
        R"("flag":true,"none":null,"s":"\u00e9\ud83d\ude00\u20ac","neg":-1.5e-3},"inputs":["x"],"weights":{}})";
    REQUIRE(json::parse(doc).ok());
    for (std::size_t n = 0; n < doc.size(); ++n) {
        auto r = json::parse(doc.data(), n);
        CHECK_MESSAGE(!r.ok(), "prefix of " << n << " bytes accepted");
    }
}

TEST_CASE("json: byte flips never crash") {
    const std::string doc = R"({"a":[1,-2.5e3,"x\n\u0041"],"b":{"c":true,"d":null},"e":"\u00e9"})";
    int errors = 0, accepted = 0;
    for (std::size_t i = 0; i < doc.size(); ++i) {
        for (unsigned mask : {0x01u, 0x20u, 0x80u, 0xffu}) {
            std::string m = doc;
            m[i] = static_cast<char>(static_cast<unsigned char>(m[i]) ^ mask);
            auto r = json::parse(m);
            if (r.ok()) ++accepted;
            else ++errors;
        }
    }
    CHECK(errors > 0);
    CHECK(accepted > 0);  // e.g. a digit or letter changed inside a string
}
