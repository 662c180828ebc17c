#pragma once

// Test helpers: a temporary directory removed at scope exit, and small file utilities.

#include <filesystem>
#include <string>
#include <string_view>

namespace lf::testing {

class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(std::string_view rel) const { return path_ / rel; }

  // Writes `content` to path()/rel, creating parent directories. Aborts the test on failure.
  std::filesystem::path write(std::string_view rel, std::string_view content) const;

 private:
  std::filesystem::path path_;
};

// Writes a file, creating parent directories; returns false on failure.
bool writeFile(const std::filesystem::path& path, std::string_view content);
std::string readFile(const std::filesystem::path& path);

}  // namespace lf::testing
