// The "replay" engine: a main() that runs LLVMFuzzerTestOneInput on every
// file named on the command line (directories are walked), with no
// coverage-guided search. Fuzz targets link it outside --config=*-fuzz, so
// their corpus regression tests run in every build (rules_fuzzing's shape).

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

int ReplayFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "replay: cannot read %s\n", path.c_str());
    return 1;
  }
  const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                                   std::istreambuf_iterator<char>());
  std::fprintf(stderr, "replay: %s (%zu bytes)\n", path.c_str(), bytes.size());
  LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  size_t replayed = 0;
  int errors = 0;
  for (int i = 1; i < argc; ++i) {
    const std::filesystem::path arg(argv[i]);
    if (arg.string().rfind("-", 0) == 0) continue;  // libFuzzer flags: ignored.
    if (std::filesystem::is_directory(arg)) {
      for (const auto& entry : std::filesystem::recursive_directory_iterator(arg)) {
        if (!entry.is_regular_file()) continue;
        errors += ReplayFile(entry.path());
        ++replayed;
      }
    } else {
      errors += ReplayFile(arg);
      ++replayed;
    }
  }
  std::fprintf(stderr, "replay: %zu input(s) ran, %d unreadable\n", replayed, errors);
  return errors == 0 ? 0 : 1;
}
