// Domain XML reading with libxml2 (no network access, no entity expansion, no DTD loading).
#include "domain_xml.hpp"

#include <libxml/parser.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <memory>

#include "parse_error.hpp"

namespace cutover::agent {

namespace {
struct DocFree {
  void operator()(xmlDoc* d) const { xmlFreeDoc(d); }
};
struct CtxFree {
  void operator()(xmlXPathContext* c) const { xmlXPathFreeContext(c); }
};
struct ObjFree {
  void operator()(xmlXPathObject* o) const { xmlXPathFreeObject(o); }
};
using XPathResult = std::unique_ptr<xmlXPathObject, ObjFree>;

constexpr size_t kMaxValue = 255;

const xmlChar* x(const char* s) { return reinterpret_cast<const xmlChar*>(s); }

// Evaluates expr relative to `node` (the document when null).
XPathResult eval(xmlXPathContext* ctx, xmlNode* node, const char* expr) {
  ctx->node = node;
  return XPathResult(xmlXPathEvalExpression(x(expr), ctx));
}

size_t count(const XPathResult& r) {
  return r && r->nodesetval ? static_cast<size_t>(r->nodesetval->nodeNr) : 0;
}

// The text of the first node expr selects under `node`, "" when none.
std::string first_text(xmlXPathContext* ctx, xmlNode* node, const char* expr,
                       const std::string& what) {
  auto r = eval(ctx, node, expr);
  if (count(r) == 0) return "";
  xmlChar* v = xmlNodeGetContent(r->nodesetval->nodeTab[0]);
  std::string out = v ? reinterpret_cast<const char*>(v) : "";
  xmlFree(v);
  if (out.size() > kMaxValue) {
    throw ParseError("xml", what + " is longer than " + std::to_string(kMaxValue) + " characters");
  }
  return out;
}

// libvirt's <inbound|outbound average= burst=>: average in kilobytes/s (1000 bytes, tc's
// "kbps"), burst in kibibytes (tc's "kb"); average 0 or absent = no limit.
std::optional<RateLimit> bandwidth(xmlXPathContext* ctx, xmlNode* iface, const std::string& path,
                                   const std::string& what) {
  auto number = [&](const char* attr) -> int64_t {
    const auto text = first_text(ctx, iface, (path + "/@" + attr).c_str(), what + " " + attr);
    if (text.empty()) return 0;
    if (text.size() > 12 || text.find_first_not_of("0123456789") != std::string::npos) {
      throw ParseError("xml", what + " " + attr + ": expected a number, got '" + text + "'");
    }
    return std::stoll(text);
  };
  const int64_t average = number("average");
  if (average == 0) return std::nullopt;
  RateLimit r;
  r.kbit_s = average * 8;
  if (r.kbit_s > kMaxKbitS) {
    throw ParseError(
        "xml", what + " average: more than " + std::to_string(kMaxKbitS / 8) + " kilobytes/s");
  }
  if (const int64_t burst = number("burst")) {
    r.burst_kbit = std::clamp<int64_t>((burst * 8192 + 999) / 1000, kMinBurstKbit, kMaxKbitS);
  }
  return r;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}
}  // namespace

std::vector<VmInterface> domain_interfaces(const std::string& xml) {
  if (xml.size() > (16 << 20)) throw ParseError("xml", "domain XML larger than 16 MiB");
  std::unique_ptr<xmlDoc, DocFree> doc(
      xmlReadMemory(xml.data(), static_cast<int>(xml.size()), "domain.xml", nullptr,
                    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING));
  if (!doc) throw ParseError("xml", "not well-formed XML");
  const xmlNode* root = xmlDocGetRootElement(doc.get());
  if (!root || xmlStrcmp(root->name, x("domain")) != 0) {
    throw ParseError("xml", "the root element is not <domain>");
  }
  std::unique_ptr<xmlXPathContext, CtxFree> ctx(xmlXPathNewContext(doc.get()));
  if (!ctx || xmlXPathRegisterNs(ctx.get(), x("c"), x(kCutoverMetadataNs)) != 0) {
    throw ParseError("xml", "cannot evaluate XPath");
  }

  // cutover's metadata: MAC -> cutover network.
  std::map<std::string, std::string> named;
  auto meta = eval(ctx.get(), nullptr, "/domain/metadata/c:interfaces/c:interface");
  if (count(meta) > kMaxDomainInterfaces) {
    throw ParseError("xml", "more than " + std::to_string(kMaxDomainInterfaces) +
                                " interfaces in cutover's metadata");
  }
  for (size_t i = 0; i < count(meta); ++i) {
    xmlNode* n = meta->nodesetval->nodeTab[i];
    const std::string where = "cutover metadata interface " + std::to_string(i + 1);
    const auto mac = lower(first_text(ctx.get(), n, "@mac", where + " mac"));
    const auto network = first_text(ctx.get(), n, "@network", where + " network");
    if (!mac.empty() && !network.empty()) named.emplace(mac, network);
  }

  auto ifaces = eval(ctx.get(), nullptr, "/domain/devices/interface");
  if (count(ifaces) > kMaxDomainInterfaces) {
    throw ParseError("xml", "more than " + std::to_string(kMaxDomainInterfaces) + " interfaces");
  }
  std::vector<VmInterface> out;
  for (size_t i = 0; i < count(ifaces); ++i) {
    xmlNode* n = ifaces->nodesetval->nodeTab[i];
    const std::string where = "interface " + std::to_string(i + 1);
    const auto type = first_text(ctx.get(), n, "@type", where + " type");
    VmInterface v;
    v.iface_id =
        first_text(ctx.get(), n, "virtualport[@type='openvswitch']/parameters/@interfaceid",
                   where + " interfaceid");
    if (v.iface_id.empty() && type == "ethernet") {
      v.iface_id = first_text(ctx.get(), n, "target/@dev", where + " target dev");
    }
    if (v.iface_id.empty()) continue;
    v.mac = lower(first_text(ctx.get(), n, "mac/@address", where + " mac"));
    if (type == "network") {
      v.libvirt_network = first_text(ctx.get(), n, "source/@network", where + " source network");
      v.portgroup = first_text(ctx.get(), n, "source/@portgroup", where + " source portgroup");
    }
    if (auto it = named.find(v.mac); it != named.end() && !v.mac.empty()) v.network = it->second;
    v.qos.to_vm = bandwidth(ctx.get(), n, "bandwidth/inbound", where + " bandwidth inbound");
    v.qos.from_vm = bandwidth(ctx.get(), n, "bandwidth/outbound", where + " bandwidth outbound");
    out.push_back(std::move(v));
  }
  return out;
}

std::set<std::string> domain_interface_ids(const std::string& xml) {
  std::set<std::string> ids;
  for (auto& i : domain_interfaces(xml)) ids.insert(std::move(i.iface_id));
  return ids;
}

}  // namespace cutover::agent
