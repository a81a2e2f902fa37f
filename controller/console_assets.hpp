// The web console's page, script and style sheet (controller/console/), compiled into the
// controller by CMake (console_assets.cpp.in) so that it serves them with nothing to install.
#pragma once

namespace cutover::controller {

extern const char* const kConsoleHtml;
extern const char* const kConsoleJs;
extern const char* const kConsoleCss;

}  // namespace cutover::controller
