// Domain XML reading with libxml2 (no network access, no entity expansion, no DTD loading).
#include "domain_xml.hpp"

#include <libxml/parser.h>
#include <libxml/xpath.h>

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

void collect(xmlXPathContext* ctx, const char* expr, std::set<std::string>& out) {
  std::unique_ptr<xmlXPathObject, ObjFree> res(
      xmlXPathEvalExpression(reinterpret_cast<const xmlChar*>(expr), ctx));
  if (!res || !res->nodesetval) return;
  for (int i = 0; i < res->nodesetval->nodeNr; ++i) {
    xmlChar* v = xmlNodeGetContent(res->nodesetval->nodeTab[i]);
    if (v && *v) out.insert(reinterpret_cast<const char*>(v));
    xmlFree(v);
  }
}
}  // namespace

std::set<std::string> domain_interface_ids(const std::string& xml) {
  if (xml.size() > (16 << 20)) throw ParseError("xml", "domain XML larger than 16 MiB");
  std::unique_ptr<xmlDoc, DocFree> doc(
      xmlReadMemory(xml.data(), static_cast<int>(xml.size()), "domain.xml", nullptr,
                    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING));
  if (!doc) throw ParseError("xml", "not well-formed XML");
  const xmlNode* root = xmlDocGetRootElement(doc.get());
  if (!root || xmlStrcmp(root->name, reinterpret_cast<const xmlChar*>("domain")) != 0) {
    throw ParseError("xml", "the root element is not <domain>");
  }
  std::unique_ptr<xmlXPathContext, CtxFree> ctx(xmlXPathNewContext(doc.get()));
  if (!ctx) throw ParseError("xml", "cannot evaluate XPath");
  std::set<std::string> out;
  collect(ctx.get(),
          "/domain/devices/interface/virtualport[@type='openvswitch']/parameters/@interfaceid",
          out);
  collect(ctx.get(), "/domain/devices/interface[@type='ethernet']/target/@dev", out);
  return out;
}

}  // namespace cutover::agent
