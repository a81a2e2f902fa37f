// Tls: the TLS settings every cutover endpoint shares (controller, agent, cutoverctl), on
// OpenSSL through Boost.Asio's ssl::context: TLS 1.2 and 1.3 only, forward-secret AEAD ciphers
// only, peers verified against the cluster CA (and its CRL when given). A peer's identity is its
// verified certificate's CN (a host id, for agents) and OU (its role: agent, controller, admin,
// reader), as `cutoverctl pki` issues them. Throws std::runtime_error naming the file or setting.
#pragma once

#include <utility>  // before Boost.Asio 1.74, which uses std::exchange without it

#include <boost/asio/ssl/context.hpp>
#include <memory>
#include <string>

namespace cutover {

struct TlsFiles {
  std::string cert;  // PEM: our certificate (server: required; client: to authenticate by it)
  std::string key;   // PEM: its private key
  std::string ca;    // PEM: the CA that signs peers (required)
  std::string crl;   // PEM: revoked certificates (optional; re-read by building a new context)
  bool any() const { return !cert.empty() || !key.empty() || !ca.empty() || !crl.empty(); }
};

// A server's context: presents cert/key, asks every client for a certificate and verifies any it
// gets (a client without one may still come in and show a token instead).
std::shared_ptr<boost::asio::ssl::context> make_server_tls(const TlsFiles& files);
// A client's context: verifies the server against the CA (the caller checks the name), and
// presents cert/key when given.
std::shared_ptr<boost::asio::ssl::context> make_client_tls(const TlsFiles& files);

struct PeerIdentity {
  bool verified = false;  // a certificate was presented and verified against the CA (and CRL)
  std::string name;       // its CN
  std::string role;       // its OU
};
// The identity the peer proved in the handshake on `ssl` (an SSL*), if any.
PeerIdentity peer_identity(void* ssl);

// Whether the certificate the peer showed on `ssl` (none: true) still verifies against `ctx`'s
// CA and revocation list now: false once it was revoked, or has expired, since the handshake.
bool peer_still_valid(void* ssl, boost::asio::ssl::context& ctx);

}  // namespace cutover
