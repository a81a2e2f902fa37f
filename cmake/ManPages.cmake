# Man pages for the installed programs, written at build time by help2man from each program's
# own --help (one place says what the flags are: the Options table or command tree in the
# program), gzipped
# without timestamps, installed with the program's package.
find_program(HELP2MAN help2man)
if(NOT HELP2MAN)
  message(WARNING "help2man not found (scripts/install-deps installs it): no man pages")
  return()
endif()

set(MAN_DIR ${CMAKE_BINARY_DIR}/man)
file(MAKE_DIRECTORY ${MAN_DIR})
set(man_pages)
# ARGN: more help2man arguments (cutoverctl's page is its --help-all: every command's flags).
function(cutover_man_page target component description)
  set(page ${MAN_DIR}/${target}.1)
  add_custom_command(
    OUTPUT ${page}.gz
    COMMAND ${CMAKE_COMMAND} -E env SOURCE_DATE_EPOCH=1795000000 ${HELP2MAN} --no-info
            --section=1 --version-string=${PROJECT_VERSION} "--name=${description}" ${ARGN}
            --output=${page} $<TARGET_FILE:${target}>
    COMMAND gzip -9nf ${page}
    DEPENDS ${target}
    COMMENT "man page for ${target}")
  install(FILES ${page}.gz DESTINATION share/man/man1 COMPONENT ${component})
  set(man_pages ${man_pages} ${page}.gz PARENT_SCOPE)
endfunction()

cutover_man_page(cutover-agent agent
                 "keeps a hypervisor's VM networking in cutover's desired state")
cutover_man_page(cutover-libvirt-hook agent
                 "libvirt qemu hook that holds an incoming live migration until cutover is ready")
cutover_man_page(cutover-nvme-probe agent "checks that an NVMe/TCP volume is reachable from here")
cutover_man_page(cutover-controller controller
                 "controller for VM network cutover during live migration")
cutover_man_page(cutoverctl cli "command-line client for the cutover controller"
                 --help-option=--help-all)
add_custom_target(man_pages ALL DEPENDS ${man_pages})
