// DumpPools(): every live pool and its stats (HAProxy's `show pools`).

#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "pool/limits.h"
#include "pool/pool.h"
#include "pool/registry.h"

namespace poolguard {
namespace {

struct Row {
  std::string name;
  size_t object_size;
  size_t slot_size;
  size_t min_free;
  size_t max_objects;
  PoolStats stats;
};

// The length of the valid UTF-8 sequence at s[i], or 0 if the byte there
// does not start one (RFC 3629: no overlong forms, no surrogates, at most
// U+10FFFF).
size_t Utf8SequenceAt(std::string_view s, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char b0 = byte(i);
  if (b0 < 0x80) return 1;
  size_t n;
  unsigned char low = 0x80, high = 0xbf;  // the bounds of the second byte
  if (b0 >= 0xc2 && b0 <= 0xdf) {
    n = 2;
  } else if (b0 >= 0xe0 && b0 <= 0xef) {
    n = 3;
    if (b0 == 0xe0) low = 0xa0;
    if (b0 == 0xed) high = 0x9f;
  } else if (b0 >= 0xf0 && b0 <= 0xf4) {
    n = 4;
    if (b0 == 0xf0) low = 0x90;
    if (b0 == 0xf4) high = 0x8f;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  if (byte(i + 1) < low || byte(i + 1) > high) return 0;
  for (size_t k = 2; k < n; ++k) {
    if (byte(i + k) < 0x80 || byte(i + k) > 0xbf) return 0;
  }
  return n;
}

// A JSON string for any bytes: quotes, backslashes and control characters
// escaped, valid UTF-8 kept, and every byte that is not part of valid UTF-8
// replaced with U+FFFD (*replaced is then set): JSON text must be UTF-8.
std::string JsonString(std::string_view s, bool* replaced = nullptr) {
  std::string out = "\"";
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
      ++i;
    } else if (c < 0x20 || c == 0x7f) {
      out += absl::StrFormat("\\u%04x", c);
      ++i;
    } else if (const size_t n = Utf8SequenceAt(s, i)) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      out += "\\ufffd";
      if (replaced != nullptr) *replaced = true;
      ++i;
    }
  }
  return out + "\"";
}

// A pool name for one row of the text table: printable ASCII and valid UTF-8
// as they are; backslash, control characters and bytes that are not valid
// UTF-8 as escapes (\\, \n, \t, \xNN), so that a name never breaks a row.
std::string TextName(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '\\') {
      out += "\\\\";
      ++i;
    } else if (c == '\n') {
      out += "\\n";
      ++i;
    } else if (c == '\t') {
      out += "\\t";
      ++i;
    } else if (c < 0x20 || c == 0x7f) {
      out += absl::StrFormat("\\x%02x", c);
      ++i;
    } else if (const size_t n = Utf8SequenceAt(s, i)) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      out += absl::StrFormat("\\x%02x", c);
      ++i;
    }
  }
  return out;
}

}  // namespace

std::string DumpPools(DumpFormat format) {
  // Copy under the registry lock (no pool can leave meanwhile), format after.
  std::vector<Row> rows;
  internal::Registry::ForEach([&rows](Pool* pool) {
    rows.push_back(Row{pool->name(), pool->object_size(), pool->slot_size(), pool->min_free(),
                       pool->max_objects(), pool->Stats()});
  });
  const size_t bytes = SystemBytesInUse();
  const size_t limit = ProcessByteLimit();
  std::string out;
  if (format == DumpFormat::kJson) {
    absl::StrAppend(&out, "{\"backend\":", JsonString(BackendName()),
                    ",\"debug\":", DebugModeEnabled() ? "true" : "false",
                    ",\"system_bytes\":", bytes, ",\"byte_limit\":", limit, ",\"pools\":[");
    for (size_t i = 0; i < rows.size(); ++i) {
      const Row& r = rows[i];
      bool replaced = false;
      const std::string name = JsonString(r.name, &replaced);
      absl::StrAppend(
          &out, i == 0 ? "" : ",", "{\"name\":", name,
          // A name that is not valid UTF-8 is shown with U+FFFD in
          // place of the bytes JSON cannot carry; say so.
          replaced ? ",\"name_not_utf8\":true" : "", ",\"object_size\":", r.object_size,
          ",\"slot_size\":", r.slot_size, ",\"allocated\":", r.stats.allocated,
          ",\"used\":", r.stats.used, ",\"free\":", r.stats.free, ",\"failed\":", r.stats.failed,
          ",\"allocated_bytes\":", r.stats.allocated * r.slot_size, ",\"min_free\":", r.min_free,
          ",\"max_objects\":", r.max_objects, ",\"backend\":", JsonString(BackendName()), "}");
    }
    absl::StrAppend(&out, "]}\n");
    return out;
  }
  absl::StrAppend(&out, "Dumping pools usage (backend ", BackendName(),
                  DebugModeEnabled() ? ", debug mode" : "", "):\n");
  absl::StrAppend(
      &out, absl::StrFormat("  %-20s %8s %8s %10s %10s %10s %10s %12s  %s\n", "pool", "size",
                            "slot", "allocated", "used", "free", "failed", "bytes", "backend"));
  size_t allocated_bytes = 0;
  size_t used_bytes = 0;
  for (const Row& r : rows) {
    allocated_bytes += r.stats.allocated * r.slot_size;
    used_bytes += r.stats.used * r.slot_size;
    absl::StrAppend(
        &out,
        absl::StrFormat("  %-20s %8u %8u %10u %10u %10u %10u %12u  %s\n", TextName(r.name),
                        r.object_size, r.slot_size, r.stats.allocated, r.stats.used, r.stats.free,
                        r.stats.failed, r.stats.allocated * r.slot_size, BackendName()));
  }
  absl::StrAppend(&out, "Total: ", rows.size(), " pools, ", allocated_bytes, " bytes allocated, ",
                  used_bytes, " used; ", bytes, " bytes held from the system (limit ",
                  limit == 0 ? std::string("none") : absl::StrCat(limit), ")\n");
  return out;
}

}  // namespace poolguard
