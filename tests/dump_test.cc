// DumpPools() for any name bytes: the JSON parses (strictly, RFC 8259, and
// as UTF-8) and gives back every name that was valid UTF-8, marks the ones
// that were not; the text table keeps one row per pool, with no raw control
// character in it.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "pool/pool.h"

namespace poolguard {
namespace {

// A strict JSON reader, enough to check DumpPools(): every value is parsed;
// strings are decoded (\uXXXX as UTF-8, surrogate pairs included); the names
// of objects with a "name" member are collected with their "name_not_utf8".
class JsonChecker {
 public:
  struct Name {
    std::string value;
    bool not_utf8 = false;
  };

  explicit JsonChecker(std::string_view text) : text_(text) {}

  // True if the whole text is one JSON value (with whitespace around).
  bool Check() {
    SkipSpace();
    if (!Value()) return false;
    SkipSpace();
    return pos_ == text_.size();
  }

  const std::vector<Name>& names() const { return names_; }

 private:
  bool Value() {
    if (pos_ >= text_.size()) return false;
    switch (text_[pos_]) {
      case '{':
        return Object();
      case '[':
        return Array();
      case '"': {
        std::string ignored;
        return String(&ignored);
      }
      case 't':
        return Literal("true");
      case 'f':
        return Literal("false");
      case 'n':
        return Literal("null");
      default:
        return Number();
    }
  }

  bool Object() {
    ++pos_;
    SkipSpace();
    std::optional<Name> name;
    if (Peek('}')) {
      ++pos_;
      return true;
    }
    for (;;) {
      SkipSpace();
      std::string key;
      if (!String(&key)) return false;
      SkipSpace();
      if (!Peek(':')) return false;
      ++pos_;
      SkipSpace();
      if (key == "name") {
        Name n;
        if (!Peek('"') || !String(&n.value)) return false;
        name = n;
      } else if (key == "name_not_utf8") {
        if (!Literal("true")) return false;
        if (!name) return false;
        name->not_utf8 = true;
      } else if (!Value()) {
        return false;
      }
      SkipSpace();
      if (Peek(',')) {
        ++pos_;
        continue;
      }
      if (Peek('}')) {
        ++pos_;
        if (name) names_.push_back(*name);
        return true;
      }
      return false;
    }
  }

  bool Array() {
    ++pos_;
    SkipSpace();
    if (Peek(']')) {
      ++pos_;
      return true;
    }
    for (;;) {
      SkipSpace();
      if (!Value()) return false;
      SkipSpace();
      if (Peek(',')) {
        ++pos_;
        continue;
      }
      if (Peek(']')) {
        ++pos_;
        return true;
      }
      return false;
    }
  }

  static void AppendUtf8(uint32_t cp, std::string* out) {
    if (cp < 0x80) {
      *out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      *out += static_cast<char>(0xc0 | (cp >> 6));
      *out += static_cast<char>(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
      *out += static_cast<char>(0xe0 | (cp >> 12));
      *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      *out += static_cast<char>(0x80 | (cp & 0x3f));
    } else {
      *out += static_cast<char>(0xf0 | (cp >> 18));
      *out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
      *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      *out += static_cast<char>(0x80 | (cp & 0x3f));
    }
  }

  bool Hex4(uint32_t* value) {
    if (pos_ + 4 > text_.size()) return false;
    *value = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = text_[pos_++];
      *value <<= 4;
      if (c >= '0' && c <= '9') {
        *value |= c - '0';
      } else if (c >= 'a' && c <= 'f') {
        *value |= c - 'a' + 10;
      } else if (c >= 'A' && c <= 'F') {
        *value |= c - 'A' + 10;
      } else {
        return false;
      }
    }
    return true;
  }

  // A string, which must be valid UTF-8 with no raw control character.
  bool String(std::string* out) {
    if (!Peek('"')) return false;
    ++pos_;
    while (pos_ < text_.size()) {
      const unsigned char c = static_cast<unsigned char>(text_[pos_]);
      if (c == '"') {
        ++pos_;
        return true;
      }
      if (c < 0x20) return false;
      if (c == '\\') {
        ++pos_;
        if (pos_ >= text_.size()) return false;
        const char e = text_[pos_++];
        switch (e) {
          case '"':
          case '\\':
          case '/':
            *out += e;
            break;
          case 'b':
            *out += '\b';
            break;
          case 'f':
            *out += '\f';
            break;
          case 'n':
            *out += '\n';
            break;
          case 'r':
            *out += '\r';
            break;
          case 't':
            *out += '\t';
            break;
          case 'u': {
            uint32_t cp;
            if (!Hex4(&cp)) return false;
            if (cp >= 0xd800 && cp <= 0xdbff) {
              uint32_t low;
              if (text_.substr(pos_, 2) != "\\u") return false;
              pos_ += 2;
              if (!Hex4(&low) || low < 0xdc00 || low > 0xdfff) return false;
              cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
            } else if (cp >= 0xdc00 && cp <= 0xdfff) {
              return false;
            }
            AppendUtf8(cp, out);
            break;
          }
          default:
            return false;
        }
        continue;
      }
      const size_t n = Utf8Length(pos_);
      if (n == 0) return false;
      out->append(text_.substr(pos_, n));
      pos_ += n;
    }
    return false;
  }

  size_t Utf8Length(size_t i) const {
    const auto byte = [&](size_t k) { return static_cast<unsigned char>(text_[k]); };
    const unsigned char b = byte(i);
    size_t n;
    if (b < 0x80) return 1;
    if (b >= 0xc2 && b <= 0xdf) {
      n = 2;
    } else if (b >= 0xe0 && b <= 0xef) {
      n = 3;
    } else if (b >= 0xf0 && b <= 0xf4) {
      n = 4;
    } else {
      return 0;
    }
    if (i + n > text_.size()) return 0;
    for (size_t k = 1; k < n; ++k) {
      if ((byte(i + k) & 0xc0) != 0x80) return 0;
    }
    // Overlong three- and four-byte forms, surrogates, beyond U+10FFFF.
    if (b == 0xe0 && byte(i + 1) < 0xa0) return 0;
    if (b == 0xed && byte(i + 1) > 0x9f) return 0;
    if (b == 0xf0 && byte(i + 1) < 0x90) return 0;
    if (b == 0xf4 && byte(i + 1) > 0x8f) return 0;
    return n;
  }

  bool Number() {
    const size_t start = pos_;
    if (Peek('-')) ++pos_;
    if (Peek('0')) {
      ++pos_;
    } else {
      if (pos_ >= text_.size() || text_[pos_] < '1' || text_[pos_] > '9') return false;
      while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') ++pos_;
    }
    if (Peek('.')) {
      ++pos_;
      const size_t digits = pos_;
      while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') ++pos_;
      if (pos_ == digits) return false;
    }
    return pos_ > start;
  }

  bool Literal(std::string_view word) {
    if (text_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }

  bool Peek(char c) const { return pos_ < text_.size() && text_[pos_] == c; }

  void SkipSpace() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\n' ||
                                   text_[pos_] == '\t' || text_[pos_] == '\r')) {
      ++pos_;
    }
  }

  std::string_view text_;
  size_t pos_ = 0;
  std::vector<Name> names_;
};

std::unique_ptr<Pool> MakePool(std::string name) {
  PoolOptions options;
  options.name = std::move(name);
  options.object_size = 16;
  absl::StatusOr<std::unique_ptr<Pool>> pool = Pool::Create(options);
  EXPECT_TRUE(pool.ok()) << pool.status();
  return pool.ok() ? *std::move(pool) : nullptr;
}

struct Case {
  std::string name;
  bool valid_utf8;
};

const std::vector<Case>& Cases() {
  static const auto* cases = new std::vector<Case>{
      {"plain", true},
      {"quote \" and back\\slash", true},
      {"new\nline and\ttab and \r and \x01 and \x7f", true},
      {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\x8d", true},  // café € 🐍
      {"bytes \x80 and \xff", false},
      {"truncated \xe2\x82", false},
      {"overlong \xc0\xaf", false},
      {"surrogate \xed\xa0\x80", false},
      {std::string("nul \0 inside", 12), true},
  };
  return *cases;
}

TEST(DumpPoolsTest, JsonParsesForAnyNameBytes) {
  std::vector<std::unique_ptr<Pool>> pools;
  for (const Case& c : Cases()) pools.push_back(MakePool(c.name));
  const std::string json = DumpPools(DumpFormat::kJson);
  JsonChecker checker(json);
  ASSERT_TRUE(checker.Check()) << json;
  ASSERT_EQ(checker.names().size(), Cases().size()) << json;
  for (const Case& c : Cases()) {
    bool found = false;
    for (const JsonChecker::Name& name : checker.names()) {
      if (c.valid_utf8 && name.value == c.name) {
        EXPECT_FALSE(name.not_utf8) << c.name;
        found = true;
      }
      if (!c.valid_utf8 && name.not_utf8 && name.value.find("\xef\xbf\xbd") != std::string::npos &&
          name.value.substr(0, 5) == c.name.substr(0, 5)) {
        found = true;  // Its invalid bytes replaced with U+FFFD, and said so.
      }
    }
    EXPECT_TRUE(found) << "name not given back: " << c.name << "\n" << json;
  }
}

TEST(DumpPoolsTest, TheTextTableKeepsOneRowPerPool) {
  std::vector<std::unique_ptr<Pool>> pools;
  for (const Case& c : Cases()) pools.push_back(MakePool(c.name));
  const std::string text = DumpPools(DumpFormat::kText);
  size_t lines = 0;
  for (char c : text) {
    if (c == '\n') ++lines;
    const unsigned char u = static_cast<unsigned char>(c);
    EXPECT_TRUE(u >= 0x20 || c == '\n') << "a raw control character in:\n" << text;
    EXPECT_NE(u, 0x7f) << text;
  }
  // A title, the column names, a row per pool, the total.
  EXPECT_EQ(lines, 3 + Cases().size()) << text;
  EXPECT_NE(text.find("new\\nline and\\ttab"), std::string::npos) << text;
  EXPECT_NE(text.find("bytes \\x80 and \\xff"), std::string::npos) << text;
  EXPECT_NE(text.find("caf\xc3\xa9"), std::string::npos) << text;
}

}  // namespace
}  // namespace poolguard
