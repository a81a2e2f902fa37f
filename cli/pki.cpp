// Pki: cutoverctl's certificate authority on OpenSSL 3 (see pki.hpp).
#include "pki.hpp"

#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "ids.hpp"

namespace cutover::cli {

namespace {

template <typename T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const { Free(p); }
};
using Key = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using Cert = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using Crl = std::unique_ptr<X509_CRL, Deleter<X509_CRL, X509_CRL_free>>;
using Bio = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;

[[noreturn]] void fail(const std::string& what) {
  char buf[256] = "";
  if (unsigned long e = ERR_get_error()) ERR_error_string_n(e, buf, sizeof buf);
  throw std::runtime_error(what + (buf[0] ? std::string(": ") + buf : ""));
}

void check(int ok, const std::string& what) {
  if (ok != 1) fail(what);
}

bool exists(const std::string& p) { return std::filesystem::exists(p); }

// Writes `text` to `path` with `mode`, replacing it atomically (a temp file renamed over it).
void write_file(const std::string& path, const std::string& text, mode_t mode) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) throw std::runtime_error("cannot write " + tmp + ": " + std::strerror(errno));
  const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
                  ::fchmod(fd, mode) == 0 && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    throw std::runtime_error("cannot write " + path + ": " + std::strerror(errno));
  }
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Key new_key() {
  Key k(EVP_EC_gen("P-256"));
  if (!k) fail("generating an EC P-256 key");
  return k;
}

// The PEM text `write(bio)` produces into a memory BIO.
template <typename Write>
std::string pem(Write&& write, const char* what) {
  Bio b(BIO_new(BIO_s_mem()));
  check(write(b.get()), what);
  char* data = nullptr;
  const long n = BIO_get_mem_data(b.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

std::string pem_key(EVP_PKEY* k) {
  return pem(
      [&](BIO* b) { return PEM_write_bio_PrivateKey(b, k, nullptr, nullptr, 0, nullptr, nullptr); },
      "encoding a key");
}

std::string pem_cert(X509* c) {
  return pem([&](BIO* b) { return PEM_write_bio_X509(b, c); }, "encoding a certificate");
}

Key load_key(const std::string& path) {
  const auto text = read_file(path);
  Bio b(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
  Key k(PEM_read_bio_PrivateKey(b.get(), nullptr, nullptr, nullptr));
  if (!k) fail("reading the key " + path);
  return k;
}

Cert load_cert(const std::string& path) {
  const auto text = read_file(path);
  Bio b(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
  Cert c(PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr));
  if (!c) fail("reading the certificate " + path);
  return c;
}

// A random positive 127-bit serial, as hex.
std::string random_serial() {
  unsigned char bytes[16];
  check(RAND_bytes(bytes, sizeof bytes), "drawing a serial");
  bytes[0] &= 0x7f;
  std::string hex;
  static const char* digits = "0123456789ABCDEF";
  for (unsigned char b : bytes) {
    hex += digits[b >> 4];
    hex += digits[b & 15];
  }
  return hex;
}

void set_serial(X509* c, const std::string& hex) {
  BIGNUM* bn = nullptr;
  if (!BN_hex2bn(&bn, hex.c_str())) fail("serial");
  ASN1_INTEGER* serial = BN_to_ASN1_INTEGER(bn, nullptr);
  BN_free(bn);
  if (!serial) fail("serial");
  const int ok = X509_set_serialNumber(c, serial);
  ASN1_INTEGER_free(serial);
  check(ok, "serial");
}

void add_ext(X509* c, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, c, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (!ext) fail("extension " + std::string(OBJ_nid2sn(nid)) + "=" + value);
  const int ok = X509_add_ext(c, ext, -1);
  X509_EXTENSION_free(ext);
  check(ok, "adding an extension");
}

Cert new_cert(EVP_PKEY* key, const std::string& cn, const std::string& ou, int days,
              const std::string& serial) {
  Cert c(X509_new());
  if (!c) fail("allocating a certificate");
  check(X509_set_version(c.get(), 2), "version");
  set_serial(c.get(), serial);
  X509_gmtime_adj(X509_getm_notBefore(c.get()), -300);  // 5 minutes of clock skew
  X509_time_adj_ex(X509_getm_notAfter(c.get()), days, 0, nullptr);
  check(X509_set_pubkey(c.get(), key), "public key");
  X509_NAME* name = X509_get_subject_name(c.get());
  check(X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                                   reinterpret_cast<const unsigned char*>("cutover"), -1, -1, 0),
        "subject O");
  check(X509_NAME_add_entry_by_txt(name, "OU", MBSTRING_UTF8,
                                   reinterpret_cast<const unsigned char*>(ou.c_str()), -1, -1, 0),
        "subject OU");
  check(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                   reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0),
        "subject CN");
  return c;
}

nlohmann::json read_json(const std::string& path) {
  if (!exists(path)) return nlohmann::json::object();
  return nlohmann::json::parse(read_file(path));
}

}  // namespace

bool valid_role(const std::string& role) {
  return role == "agent" || role == "controller" || role == "admin" || role == "reader";
}

void Pki::init(const std::string& ca_name, int days) {
  if (exists(path("ca.key"))) {
    throw std::runtime_error("a CA is already in " + dir_ + " (ca.key); refusing to replace it");
  }
  std::filesystem::create_directories(dir_);
  // 0755 like ovs-pki's: the CA certificate and the CRL are public, and a service running as a
  // dynamic user (the controller's unit) must be able to re-read the CRL on reload. Keys are 0600.
  ::chmod(dir_.c_str(), 0755);
  auto key = new_key();
  auto cert = new_cert(key.get(), ca_name, "ca", days, random_serial());
  check(X509_set_issuer_name(cert.get(), X509_get_subject_name(cert.get())), "issuer");
  add_ext(cert.get(), cert.get(), NID_basic_constraints, "critical,CA:TRUE,pathlen:0");
  add_ext(cert.get(), cert.get(), NID_key_usage, "critical,keyCertSign,cRLSign");
  add_ext(cert.get(), cert.get(), NID_subject_key_identifier, "hash");
  if (X509_sign(cert.get(), key.get(), EVP_sha256()) <= 0) fail("signing the CA");
  write_file(path("ca.key"), pem_key(key.get()), 0600);
  write_file(path("ca.pem"), pem_cert(cert.get()), 0644);
  write_crl();
}

void Pki::issue(const IssueRequest& req) {
  if (!is_valid_id(req.name)) {  // the holder's name is a host id, or at least shaped like one
    throw std::runtime_error("name '" + req.name +
                             "': expected up to 64 of [A-Za-z0-9._-], starting alphanumeric");
  }
  if (!valid_role(req.role)) {
    throw std::runtime_error("role '" + req.role +
                             "': expected agent, controller, admin or reader");
  }
  if (req.days < 1) throw std::runtime_error("days: must be at least 1");
  auto issued = read_json(path("issued.json"));
  if (issued.contains(req.name)) {
    throw std::runtime_error("'" + req.name + "' was issued already (serial " +
                             issued[req.name].value("serial", "?") + "); revoke it first");
  }
  auto ca_key = load_key(path("ca.key"));
  auto ca = load_cert(path("ca.pem"));
  auto key = new_key();
  const auto serial = random_serial();
  auto cert = new_cert(key.get(), req.name, req.role, req.days, serial);
  check(X509_set_issuer_name(cert.get(), X509_get_subject_name(ca.get())), "issuer");
  add_ext(cert.get(), ca.get(), NID_basic_constraints, "critical,CA:FALSE");
  add_ext(cert.get(), ca.get(), NID_key_usage, "critical,digitalSignature,keyEncipherment");
  add_ext(cert.get(), ca.get(), NID_ext_key_usage,
          req.role == "controller" ? "serverAuth,clientAuth" : "clientAuth");
  add_ext(cert.get(), ca.get(), NID_authority_key_identifier, "keyid:always");
  std::string san = "DNS:" + req.name;
  for (const auto& d : req.dns) san += ",DNS:" + d;
  for (const auto& ip : req.ips) san += ",IP:" + ip;
  add_ext(cert.get(), ca.get(), NID_subject_alt_name, san);
  if (X509_sign(cert.get(), ca_key.get(), EVP_sha256()) <= 0) fail("signing " + req.name);
  write_file(path(req.name + ".key"), pem_key(key.get()), 0600);
  write_file(path(req.name + ".pem"), pem_cert(cert.get()), 0644);
  issued[req.name] = {{"serial", serial}, {"role", req.role}};
  write_file(path("issued.json"), issued.dump(2) + "\n", 0644);
}

void Pki::revoke(const std::string& name) {
  auto issued = read_json(path("issued.json"));
  if (!issued.contains(name)) throw std::runtime_error("'" + name + "' was not issued here");
  auto revoked = read_json(path("revoked.json"));
  revoked[issued[name].value("serial", "")] = {{"name", name}, {"at", std::time(nullptr)}};
  write_file(path("revoked.json"), revoked.dump(2) + "\n", 0644);
  issued.erase(name);  // the name may be issued again (a new key, a new serial)
  write_file(path("issued.json"), issued.dump(2) + "\n", 0644);
  write_crl();
}

void Pki::write_crl() {
  auto ca_key = load_key(path("ca.key"));
  auto ca = load_cert(path("ca.pem"));
  Crl crl(X509_CRL_new());
  if (!crl) fail("allocating the CRL");
  check(X509_CRL_set_version(crl.get(), 1), "CRL version");
  check(X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(ca.get())), "CRL issuer");
  ASN1_TIME* now = ASN1_TIME_adj(nullptr, std::time(nullptr), 0, -300);
  ASN1_TIME* next = ASN1_TIME_adj(nullptr, std::time(nullptr), 30, 0);
  X509_CRL_set1_lastUpdate(crl.get(), now);
  X509_CRL_set1_nextUpdate(crl.get(), next);
  const auto revoked = read_json(path("revoked.json"));
  for (const auto& [serial, info] : revoked.items()) {
    X509_REVOKED* r = X509_REVOKED_new();
    BIGNUM* bn = nullptr;
    BN_hex2bn(&bn, serial.c_str());
    ASN1_INTEGER* s = BN_to_ASN1_INTEGER(bn, nullptr);
    BN_free(bn);
    X509_REVOKED_set_serialNumber(r, s);
    ASN1_INTEGER_free(s);
    ASN1_TIME* at = ASN1_TIME_set(nullptr, info.value("at", std::time_t{0}));
    X509_REVOKED_set_revocationDate(r, at);
    ASN1_TIME_free(at);
    X509_CRL_add0_revoked(crl.get(), r);
  }
  ASN1_TIME_free(now);
  ASN1_TIME_free(next);
  X509_CRL_sort(crl.get());
  if (X509_CRL_sign(crl.get(), ca_key.get(), EVP_sha256()) <= 0) fail("signing the CRL");
  write_file(path("crl.pem"),
             pem([&](BIO* b) { return PEM_write_bio_X509_CRL(b, crl.get()); }, "encoding the CRL"),
             0644);
}

}  // namespace cutover::cli
