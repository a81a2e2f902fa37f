// Tls: contexts and peer identities on OpenSSL 3 (see tls.hpp).
#include "tls.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include <stdexcept>

namespace cutover {

namespace ssl = boost::asio::ssl;

namespace {

// TLS 1.2 suites with ECDHE and AEAD only; TLS 1.3's are all modern.
constexpr const char* kCiphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

std::shared_ptr<ssl::context> base(ssl::context::method method, const TlsFiles& f) {
  auto ctx = std::make_shared<ssl::context>(method);
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                   ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                   ssl::context::no_compression | ssl::context::single_dh_use);
  SSL_CTX* native = ctx->native_handle();
  SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
  if (SSL_CTX_set_cipher_list(native, kCiphers) != 1) {
    throw std::runtime_error("TLS: no usable cipher suites");
  }
  if (f.ca.empty()) throw std::runtime_error("TLS: a CA file is required (--tls-ca)");
  boost::system::error_code ec;
  ctx->load_verify_file(f.ca, ec);
  if (ec) throw std::runtime_error("TLS: cannot load the CA " + f.ca + ": " + ec.message());
  if (!f.cert.empty() || !f.key.empty()) {
    if (f.cert.empty() || f.key.empty()) {
      throw std::runtime_error("TLS: give both a certificate and its key (--tls-cert, --tls-key)");
    }
    ctx->use_certificate_chain_file(f.cert, ec);
    if (ec)
      throw std::runtime_error("TLS: cannot load the certificate " + f.cert + ": " + ec.message());
    ctx->use_private_key_file(f.key, ssl::context::pem, ec);
    if (ec) throw std::runtime_error("TLS: cannot load the key " + f.key + ": " + ec.message());
    if (SSL_CTX_check_private_key(native) != 1) {
      throw std::runtime_error("TLS: the key " + f.key + " does not match " + f.cert);
    }
  }
  if (!f.crl.empty()) {
    X509_STORE* store = SSL_CTX_get_cert_store(native);
    X509_LOOKUP* lookup = X509_STORE_add_lookup(store, X509_LOOKUP_file());
    if (!lookup || X509_load_crl_file(lookup, f.crl.c_str(), X509_FILETYPE_PEM) <= 0) {
      throw std::runtime_error("TLS: cannot load the revocation list " + f.crl);
    }
    X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
  }
  return ctx;
}

}  // namespace

std::shared_ptr<ssl::context> make_server_tls(const TlsFiles& files) {
  if (files.cert.empty()) throw std::runtime_error("TLS: a server needs --tls-cert and --tls-key");
  auto ctx = base(ssl::context::tls_server, files);
  ctx->set_verify_mode(ssl::verify_peer);  // asked for, checked if given, not required
  return ctx;
}

std::shared_ptr<ssl::context> make_client_tls(const TlsFiles& files) {
  auto ctx = base(ssl::context::tls_client, files);
  ctx->set_verify_mode(ssl::verify_peer);
  return ctx;
}

PeerIdentity peer_identity(void* handle) {
  auto* s = static_cast<SSL*>(handle);
  PeerIdentity id;
  X509* cert = SSL_get1_peer_certificate(s);
  if (!cert) return id;
  if (SSL_get_verify_result(s) == X509_V_OK) {
    char buf[256] = "";
    X509_NAME* subject = X509_get_subject_name(cert);
    if (X509_NAME_get_text_by_NID(subject, NID_commonName, buf, sizeof buf) > 0) id.name = buf;
    buf[0] = 0;
    if (X509_NAME_get_text_by_NID(subject, NID_organizationalUnitName, buf, sizeof buf) > 0) {
      id.role = buf;
    }
    id.verified = !id.name.empty();
  }
  X509_free(cert);
  return id;
}

bool peer_still_valid(void* handle, boost::asio::ssl::context& ctx) {
  auto* s = static_cast<SSL*>(handle);
  X509* cert = SSL_get0_peer_certificate(s);
  if (!cert) return true;
  X509_STORE_CTX* check = X509_STORE_CTX_new();
  if (!check) return true;  // no memory to check with: keep it, the next handshake decides
  bool ok = false;
  // A server's peer chain leaves out the leaf: the intermediates, if any.
  if (X509_STORE_CTX_init(check, SSL_CTX_get_cert_store(ctx.native_handle()), cert,
                          SSL_get_peer_cert_chain(s)) == 1) {
    ok = X509_verify_cert(check) == 1;
  }
  X509_STORE_CTX_free(check);
  return ok;
}

}  // namespace cutover
