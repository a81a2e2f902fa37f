// Unit tests for cutoverctl's certificate authority (cli/pki): what it issues verifies against
// its CA with OpenSSL's own chain check, names the holder (CN) and role (OU), carries the
// controller's names, and stops verifying once revoked (crl.pem); keys are 0600.
#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "pki.hpp"

using namespace cutover::cli;

namespace {

X509* load(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "r");
  if (!f) return nullptr;
  X509* c = PEM_read_X509(f, nullptr, nullptr, nullptr);
  std::fclose(f);
  return c;
}

X509_CRL* load_crl(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "r");
  if (!f) return nullptr;
  X509_CRL* c = PEM_read_X509_CRL(f, nullptr, nullptr, nullptr);
  std::fclose(f);
  return c;
}

// OpenSSL's verdict on `cert` against the CA (and its CRL): X509_V_OK or the error.
int verify(const Pki& pki, const std::string& name) {
  X509_STORE* store = X509_STORE_new();
  X509* ca = load(pki.path("ca.pem"));
  X509_STORE_add_cert(store, ca);
  X509_CRL* crl = load_crl(pki.path("crl.pem"));
  X509_STORE_add_crl(store, crl);
  X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
  X509* cert = load(pki.path(name + ".pem"));
  X509_STORE_CTX* ctx = X509_STORE_CTX_new();
  X509_STORE_CTX_init(ctx, store, cert, nullptr);
  const int ok = X509_verify_cert(ctx);
  const int err = ok == 1 ? X509_V_OK : X509_STORE_CTX_get_error(ctx);
  X509_STORE_CTX_free(ctx);
  X509_free(cert);
  X509_CRL_free(crl);
  X509_free(ca);
  X509_STORE_free(store);
  return err;
}

std::string subject_entry(const std::string& path, int nid) {
  X509* c = load(path);
  char buf[256] = "";
  X509_NAME_get_text_by_NID(X509_get_subject_name(c), nid, buf, sizeof buf);
  X509_free(c);
  return buf;
}

struct TempDir {
  std::string path =
      std::filesystem::temp_directory_path() / ("cutover-pki-test-" + std::to_string(getpid()));
  ~TempDir() { std::filesystem::remove_all(path); }
};

}  // namespace

TEST(Pki, IssuedCertificatesVerifyNameTheirHolderAndStopVerifyingOnceRevoked) {
  TempDir tmp;
  Pki pki(tmp.path + "/pki");
  pki.init("test CA", 30);
  pki.issue({"h1", "agent", {}, {}, 10});
  pki.issue({"ctl", "controller", {"ctl.example"}, {"127.0.0.1"}, 10});
  EXPECT_EQ(verify(pki, "h1"), X509_V_OK);
  EXPECT_EQ(verify(pki, "ctl"), X509_V_OK);
  EXPECT_EQ(subject_entry(pki.path("h1.pem"), NID_commonName), "h1");
  EXPECT_EQ(subject_entry(pki.path("h1.pem"), NID_organizationalUnitName), "agent");
  X509* ctl = load(pki.path("ctl.pem"));
  EXPECT_EQ(X509_check_host(ctl, "ctl.example", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_ip_asc(ctl, "127.0.0.1", 0), 1);
  EXPECT_EQ(X509_check_host(ctl, "elsewhere.example", 0, 0, nullptr), 0);
  X509_free(ctl);
  struct stat st {};
  ASSERT_EQ(stat(pki.path("h1.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(stat(pki.path("ca.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(stat(pki.path("crl.pem").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u) << "a service's dynamic user re-reads it";
  ASSERT_EQ(stat(pki.path("").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0755u);

  EXPECT_THROW(pki.issue({"h1", "agent", {}, {}, 10}), std::runtime_error) << "issued already";
  pki.revoke("h1");
  EXPECT_EQ(verify(pki, "h1"), X509_V_ERR_CERT_REVOKED);
  EXPECT_EQ(verify(pki, "ctl"), X509_V_OK);
  pki.issue({"h1", "agent", {}, {}, 10});  // a new key and serial under the same name
  EXPECT_EQ(verify(pki, "h1"), X509_V_OK);
}

TEST(Pki, RefusesBadNamesRolesAndASecondCa) {
  TempDir tmp;
  Pki pki(tmp.path + "/pki");
  pki.init("test CA", 30);
  EXPECT_THROW(pki.init("again", 30), std::runtime_error);
  EXPECT_THROW(pki.issue({"../etc", "agent", {}, {}, 10}), std::runtime_error);
  EXPECT_THROW(pki.issue({"h2", "root", {}, {}, 10}), std::runtime_error);
  EXPECT_THROW(pki.issue({"h2", "agent", {}, {}, 0}), std::runtime_error);
  EXPECT_THROW(pki.revoke("never-issued"), std::runtime_error);
}
