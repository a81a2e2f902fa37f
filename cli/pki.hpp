// Pki: the small certificate authority `cutoverctl pki` runs, in the spirit of ovs-pki. One
// directory holds the CA (ca.key, ca.pem), every certificate it issued (NAME.key, NAME.pem, and
// their serials in issued.json), and the revocation list (crl.pem, from revoked.json) that the
// controller reloads on SIGHUP. A certificate names its holder in the CN (a host id for agents)
// and its role in the OU: agent, controller, admin or reader. Keys are EC P-256, written 0600;
// the directory is 0755 (the CA certificate and CRL are public). OpenSSL 3 underneath; throws
// std::runtime_error naming what failed.
#pragma once

#include <string>
#include <vector>

namespace cutover::cli {

struct IssueRequest {
  std::string name;              // CN: a host id (agent), or a DNS name (controller), or a person
  std::string role = "agent";    // OU: agent | controller | admin | reader
  std::vector<std::string> dns;  // subjectAltName DNS entries (controller); NAME is always one
  std::vector<std::string> ips;  // subjectAltName IP entries (controller)
  int days = 825;
};

class Pki {
 public:
  explicit Pki(std::string dir) : dir_(std::move(dir)) {}

  // Creates the directory and the CA; refuses when a CA is already there.
  void init(const std::string& ca_name, int days);
  // Key and certificate for one holder; refuses a name already issued (revoke it first).
  void issue(const IssueRequest& req);
  // Adds NAME's certificate to the revocation list and rewrites crl.pem. Its files are kept.
  void revoke(const std::string& name);
  // Rewrites crl.pem (it expires after 30 days: run this, or revoke, at least that often).
  void write_crl();

  std::string path(const std::string& file) const { return dir_ + "/" + file; }

 private:
  std::string dir_;
};

// The roles a certificate can carry (its OU).
bool valid_role(const std::string& role);

}  // namespace cutover::cli
