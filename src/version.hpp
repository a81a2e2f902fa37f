// cutover's version: the one place it is written. CMake reads it from here for project() and the
// packages; the programs print it (--version) and the controller exports it (cutover_build_info).
#pragma once

namespace cutover {

inline constexpr const char* kVersion = "0.1.0";

}  // namespace cutover
