# Builds libopenvswitch.a (plus its generated IDL headers) from Debian's openvswitch-source
# tarball into the build tree, once; later builds reuse it. Exposes the imported target
# `openvswitch::lib`, which only the agent's C shim may link and include.
include(ExternalProject)

set(OVS_TARBALL "/usr/src/openvswitch/openvswitch.tar.gz" CACHE FILEPATH
    "OVS source tarball from Debian's openvswitch-source package")
if(NOT EXISTS "${OVS_TARBALL}")
  message(FATAL_ERROR "${OVS_TARBALL} not found: install Debian's openvswitch-source "
                      "(scripts/install-deps does it)")
endif()

# Accept any 3.1.x rather than pinning a checksum that a Debian security update would break.
execute_process(
  COMMAND tar -xzOf "${OVS_TARBALL}" openvswitch/configure.ac
  OUTPUT_VARIABLE _ovs_configure_ac RESULT_VARIABLE _ovs_rc)
string(REGEX MATCH "AC_INIT\\(openvswitch, ([0-9.]+)," _ovs_m "${_ovs_configure_ac}")
set(OVS_VERSION "${CMAKE_MATCH_1}")
if(NOT _ovs_rc EQUAL 0 OR NOT OVS_VERSION MATCHES "^3\\.1\\.")
  message(FATAL_ERROR "expected Open vSwitch 3.1.x in ${OVS_TARBALL}, found '${OVS_VERSION}'")
endif()
message(STATUS "Open vSwitch ${OVS_VERSION} from ${OVS_TARBALL}")

set(OVS_SRC "${CMAKE_BINARY_DIR}/_ovs/src/ovs")
set(OVS_LIB "${OVS_SRC}/lib/.libs/libopenvswitch.a")
# The generated headers are BUILT_SOURCES: they need a make call of their own before the library.
set(OVS_GENERATED include/odp-netlink.h include/odp-netlink-macros.h ofproto/ipfix-entities.def
    lib/vswitch-idl.c lib/vswitch-idl.h lib/ovsdb-server-idl.c lib/ovsdb-server-idl.h)

ExternalProject_Add(ovs_build
  PREFIX "${CMAKE_BINARY_DIR}/_ovs"
  URL "${OVS_TARBALL}"
  DOWNLOAD_EXTRACT_TIMESTAMP TRUE
  SOURCE_DIR "${OVS_SRC}"
  BUILD_IN_SOURCE TRUE
  CONFIGURE_COMMAND ./configure --enable-static --disable-shared --disable-ssl
                    --disable-libcapng PYTHON3=/usr/bin/python3 "CFLAGS=-O2 -g0 -fPIC"
                    --quiet
  BUILD_COMMAND make -s -j2 ${OVS_GENERATED}
        COMMAND make -s -j2 lib/libopenvswitch.la
  INSTALL_COMMAND ""
  BUILD_BYPRODUCTS "${OVS_LIB}"
  LOG_CONFIGURE TRUE LOG_BUILD TRUE LOG_OUTPUT_ON_FAILURE TRUE)

file(MAKE_DIRECTORY "${OVS_SRC}/include" "${OVS_SRC}/lib")
add_library(openvswitch::lib STATIC IMPORTED GLOBAL)
set_target_properties(openvswitch::lib PROPERTIES IMPORTED_LOCATION "${OVS_LIB}")
target_include_directories(openvswitch::lib INTERFACE
  "${OVS_SRC}" "${OVS_SRC}/include" "${OVS_SRC}/lib")
target_link_libraries(openvswitch::lib INTERFACE Threads::Threads m rt)
add_dependencies(openvswitch::lib ovs_build)
