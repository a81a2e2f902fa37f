// What cutover reads from a libvirt domain's XML: each network interface cutover can bind
// (VmInterface: its iface-id - the interfaceid of an <interface> with <virtualport
// type='openvswitch'>, or the tap name (<target dev>) of an <interface type='ethernet'>, which
// the Linux dataplane binds by name - its MAC, its libvirt network and portgroup, and the cutover
// network that cutover's own <metadata> element names for its MAC). Parsed with libxml2 and
// XPath over /domain/devices and /domain/metadata only, so an interfaceid= that appears elsewhere
// (in another program's metadata, in a comment) is never taken for one. Pure; no libvirt calls.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "agent_report.hpp"

namespace cutover::agent {

// The namespace of cutover's element in a domain's <metadata>, e.g.
//   <cutover:interfaces xmlns:cutover="https://cutover.dev/xmlns/libvirt/1">
//     <cutover:interface mac="52:54:00:00:00:01" network="blue"/>
//   </cutover:interfaces>
// (what `virsh metadata DOMAIN --uri URI --key cutover --set XML` writes).
inline constexpr const char* kCutoverMetadataNs = "https://cutover.dev/xmlns/libvirt/1";

// At most this many interfaces per domain are read; more is refused as hostile.
inline constexpr size_t kMaxDomainInterfaces = 256;

// The interfaces in document order (those without an iface-id are skipped: cutover cannot bind
// them). Throws ParseError("xml", ...) when the text is not a well-formed <domain> document, has
// more than kMaxDomainInterfaces interfaces, or a value longer than 255 characters.
std::vector<VmInterface> domain_interfaces(const std::string& xml);

// The iface-ids of domain_interfaces(xml); throws as it does.
std::set<std::string> domain_interface_ids(const std::string& xml);

}  // namespace cutover::agent
