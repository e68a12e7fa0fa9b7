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

std::string JsonString(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += absl::StrFormat("\\u%04x", static_cast<unsigned char>(c));
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
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
      absl::StrAppend(&out, i == 0 ? "" : ",", "{\"name\":", JsonString(r.name),
                      ",\"object_size\":", r.object_size, ",\"slot_size\":", r.slot_size,
                      ",\"allocated\":", r.stats.allocated, ",\"used\":", r.stats.used,
                      ",\"free\":", r.stats.free, ",\"failed\":", r.stats.failed,
                      ",\"allocated_bytes\":", r.stats.allocated * r.slot_size,
                      ",\"min_free\":", r.min_free, ",\"max_objects\":", r.max_objects,
                      ",\"backend\":", JsonString(BackendName()), "}");
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
    absl::StrAppend(&out, absl::StrFormat("  %-20s %8u %8u %10u %10u %10u %10u %12u  %s\n", r.name,
                                          r.object_size, r.slot_size, r.stats.allocated,
                                          r.stats.used, r.stats.free, r.stats.failed,
                                          r.stats.allocated * r.slot_size, BackendName()));
  }
  absl::StrAppend(&out, "Total: ", rows.size(), " pools, ", allocated_bytes, " bytes allocated, ",
                  used_bytes, " used; ", bytes, " bytes held from the system (limit ",
                  limit == 0 ? std::string("none") : absl::StrCat(limit), ")\n");
  return out;
}

}  // namespace poolguard
