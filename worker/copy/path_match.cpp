// matchPattern(): COPY's per-component wildcard match, on the project's one Go filepath.Match
// implementation (common/context/pattern.h), the one the planner keys COPY sources with.

#include "common/context/pattern.h"
#include "worker/copy/copy_executor.h"

namespace lf::worker {

Result<bool> matchPattern(std::string_view pattern, std::string_view name) {
  LF_ASSIGN_OR_RETURN(auto glob,
                      context::GlobPattern::compile(pattern, context::GlobSyntax::kFilepath));
  return glob.matches(name);
}

}  // namespace lf::worker
