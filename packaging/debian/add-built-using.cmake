# CPack post-build step: cutover-agent links libopenvswitch.a built from Debian's
# openvswitch-source, so its package names that source and version in Built-Using (Debian
# policy 7.8). CPack has no field for it: the .deb is unpacked, the field added, and rebuilt.
foreach(deb IN LISTS CPACK_PACKAGE_FILES)
  get_filename_component(name ${deb} NAME)
  if(NOT name MATCHES "^cutover-agent_")
    continue()
  endif()
  execute_process(COMMAND dpkg-query -W "-f=\${source:Package} (= \${source:Version})"
                          openvswitch-source
                  OUTPUT_VARIABLE ovs RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0 OR ovs STREQUAL "")
    message(FATAL_ERROR "Built-Using: openvswitch-source is not installed")
  endif()
  set(dir ${deb}.unpacked)
  file(REMOVE_RECURSE ${dir})
  execute_process(COMMAND dpkg-deb -R ${deb} ${dir} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "dpkg-deb -R ${deb} failed")
  endif()
  file(READ ${dir}/DEBIAN/control control)
  string(REGEX REPLACE "\nBuilt-Using: [^\n]*" "" control "${control}")
  string(REGEX REPLACE "(\nDepends: [^\n]*)" "\\1\nBuilt-Using: ${ovs}" control "${control}")
  file(WRITE ${dir}/DEBIAN/control "${control}")
  execute_process(COMMAND dpkg-deb --root-owner-group -Zxz -b ${dir} ${deb}
                  OUTPUT_QUIET RESULT_VARIABLE rc)
  file(REMOVE_RECURSE ${dir})
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "dpkg-deb -b ${deb} failed")
  endif()
endforeach()
