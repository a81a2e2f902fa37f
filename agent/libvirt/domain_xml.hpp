// What cutover reads from a libvirt domain's XML: the iface-id of each of its network interfaces
// - the interfaceid of an <interface> with <virtualport type='openvswitch'>, or the tap name
// (<target dev>) of an <interface type='ethernet'>, which the Linux dataplane binds by name.
// Parsed with libxml2 and XPath over /domain/devices only, so an interfaceid= that appears
// elsewhere (in <metadata>, in a comment) is never taken for one. Pure; no libvirt calls.
#pragma once

#include <set>
#include <string>

namespace cutover::agent {

// Throws ParseError("xml", ...) when the text is not a well-formed <domain> document.
std::set<std::string> domain_interface_ids(const std::string& xml);

}  // namespace cutover::agent
