# Install rules and CPack (DEB): cutover-agent, cutover-controller and cutoverctl packages with
# their systemd units, documented config files under /etc/cutover, docs and copyright.
include(GNUInstallDirs)
set(PKG ${CMAKE_SOURCE_DIR}/packaging)

install(TARGETS cutover-agent cutover-nvme-probe cutover-libvirt-hook RUNTIME DESTINATION bin
        COMPONENT agent)
install(TARGETS cutover-controller RUNTIME DESTINATION bin COMPONENT controller)
install(TARGETS cutoverctl RUNTIME DESTINATION bin COMPONENT cli)

install(FILES ${PKG}/systemd/cutover-agent.service DESTINATION /lib/systemd/system COMPONENT agent)
install(FILES ${PKG}/systemd/cutover-controller.service DESTINATION /lib/systemd/system
        COMPONENT controller)
install(FILES ${PKG}/etc/agent.conf DESTINATION /etc/cutover COMPONENT agent)
install(FILES ${PKG}/etc/controller.conf DESTINATION /etc/cutover COMPONENT controller)
# A Grafana dashboard on the controller's and the agents' metrics (docs/operations.md).
install(FILES ${PKG}/grafana/cutover-dashboard.json DESTINATION share/cutover/grafana
        COMPONENT controller)
# /etc/cutover/tls, where the units load TLS files from as credentials, is made root-only by
# postinst (packaging/debian).

foreach(comp agent controller cli)
  if(comp STREQUAL "cli")
    set(pkgname cutoverctl)
  else()
    set(pkgname cutover-${comp})
  endif()
  set(docdir share/doc/${pkgname})
  install(FILES ${PKG}/doc/copyright DESTINATION ${docdir} COMPONENT ${comp})
  # Debian wants the (native package) changelog gzipped with -n (no timestamp) for reproducibility.
  set(gz ${CMAKE_BINARY_DIR}/pkg/${pkgname}/changelog.gz)
  add_custom_command(OUTPUT ${gz}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/pkg/${pkgname}
    COMMAND gzip -9n -c ${PKG}/doc/changelog > ${gz}
    DEPENDS ${PKG}/doc/changelog)
  add_custom_target(changelog_${comp} ALL DEPENDS ${gz})
  install(FILES ${gz} DESTINATION ${docdir} COMPONENT ${comp})
endforeach()
install(FILES ${CMAKE_SOURCE_DIR}/docs/install.md ${CMAKE_SOURCE_DIR}/docs/operations.md
        DESTINATION share/doc/cutover-agent COMPONENT agent)
install(FILES ${CMAKE_SOURCE_DIR}/docs/install.md ${CMAKE_SOURCE_DIR}/docs/operations.md
              ${CMAKE_SOURCE_DIR}/docs/api.md ${CMAKE_SOURCE_DIR}/controller/openapi.yaml
        DESTINATION share/doc/cutover-controller COMPONENT controller)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME cutover)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "cutover")
set(CPACK_PACKAGE_CONTACT "cutover developers <maintainers@cutover.dev>")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL agent controller cli)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "https://cutover.dev")
set(CPACK_DEBIAN_AGENT_PACKAGE_NAME cutover-agent)
set(CPACK_DEBIAN_CONTROLLER_PACKAGE_NAME cutover-controller)
set(CPACK_DEBIAN_CLI_PACKAGE_NAME cutoverctl)
set(CPACK_DEBIAN_AGENT_PACKAGE_RECOMMENDS "openvswitch-switch, libvirt-daemon-system")
set(CPACK_DEBIAN_AGENT_PACKAGE_SUGGESTS "cutoverctl")
set(CPACK_DEBIAN_CONTROLLER_PACKAGE_SUGGESTS "cutoverctl")
set(CPACK_COMPONENT_AGENT_DESCRIPTION
    "hypervisor agent keeping VM network state across live migration\nKeeps a VM's IP, MAC and TCP sessions intact across live migration:\nreconciles Open vSwitch to the controller's desired state, pre-programs\nthe destination and cuts over without disturbing traffic.")
set(CPACK_COMPONENT_CONTROLLER_DESCRIPTION
    "controller for VM network cutover during live migration\nREST API, versioned desired state (SQLite) and the migration state\nmachine that drives cutover agents on every hypervisor.")
set(CPACK_COMPONENT_CLI_DESCRIPTION
    "command-line client for the cutover controller\ncutoverctl manages hosts, networks, ports and migrations through the\ncutover controller's REST API.")
# Config files are conffiles. Maintainer scripts (packaging/debian/*.in, what debhelper's
# systemd snippets do): daemon-reload, enable on install, restart on upgrade if running, stop on
# remove; purge removes the daemon's state.
set(agent_STATE "nothing: its state is the switch's and the kernel's")
set(agent_PURGE ":")
set(controller_STATE "/var/lib/cutover: the SQLite store")
set(controller_PURGE "rm -rf /var/lib/cutover")
foreach(comp agent controller)
  set(dir ${CMAKE_BINARY_DIR}/pkg/${comp})
  file(WRITE ${dir}/conffiles "/etc/cutover/${comp}.conf\n")
  set(PKG cutover-${comp})
  set(STATE ${${comp}_STATE})
  set(PURGE ${${comp}_PURGE})
  foreach(script postinst prerm postrm)
    configure_file(${CMAKE_SOURCE_DIR}/packaging/debian/${script}.in ${dir}/${script} @ONLY
                   FILE_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ
                   GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
  endforeach()
  string(TOUPPER ${comp} COMP)
  set(CPACK_DEBIAN_${COMP}_PACKAGE_CONTROL_EXTRA
      ${dir}/conffiles ${dir}/postinst ${dir}/prerm ${dir}/postrm)
endforeach()
set(PKG ${CMAKE_SOURCE_DIR}/packaging)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)
set(CPACK_POST_BUILD_SCRIPTS ${CMAKE_SOURCE_DIR}/packaging/debian/add-built-using.cmake)
include(CPack)
