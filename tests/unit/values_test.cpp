// Unit tests for the value types: MacAddress, IpAddress, Vni and ids, accept and reject paths.
#include <gtest/gtest.h>

#include "ids.hpp"
#include "ip_address.hpp"
#include "mac_address.hpp"
#include "parse_error.hpp"
#include "vni.hpp"

using namespace cutover;

TEST(MacAddress, ParsesAndPrintsLowercase) {
  EXPECT_EQ(MacAddress::parse("52:54:00:AB:cd:0F").to_string(), "52:54:00:ab:cd:0f");
  EXPECT_TRUE(MacAddress::parse("01:00:5e:00:00:01").is_multicast());
  EXPECT_TRUE(MacAddress::parse("00:00:00:00:00:00").is_zero());
}

TEST(MacAddress, RejectsMalformed) {
  for (const char* bad :
       {"", "52:54:00:ab:cd", "52:54:00:ab:cd:0f:", "52-54-00-ab-cd-0f", "5254.00ab.cd0f",
        "52:54:00:ab:cd:0g", "52:54:00:ab:cd: f", "52:54:00:ab:cd:0f ", "zz:zz:zz:zz:zz:zz"}) {
    EXPECT_THROW(MacAddress::parse(bad), ParseError) << bad;
  }
}

TEST(IpAddress, ParsesV4AndV6Canonically) {
  auto v4 = IpAddress::parse("10.0.0.1");
  EXPECT_TRUE(v4.is_v4());
  EXPECT_EQ(v4.to_string(), "10.0.0.1");
  EXPECT_EQ(v4.v4_host_order(), 0x0a000001u);
  EXPECT_EQ(IpAddress::v4(0x0a000001u), v4);
  auto v6 = IpAddress::parse("FD00:0:0::0001");
  EXPECT_FALSE(v6.is_v4());
  EXPECT_EQ(v6.to_string(), "fd00::1");
  EXPECT_NE(IpAddress::parse("::"), IpAddress::parse("0.0.0.0"));
}

TEST(IpAddress, RejectsMalformed) {
  for (const char* bad : {"", "10.0.0", "10.0.0.256", "10.0.0.1/24", " 10.0.0.1", "fd00:::1",
                          "fd00::g", "10.0.0.1.2", "localhost", "1::2::3"}) {
    EXPECT_THROW(IpAddress::parse(bad), ParseError) << bad;
  }
}

TEST(Vni, AcceptsRangeRejectsOutside) {
  EXPECT_EQ(Vni::from(1).value(), 1u);
  EXPECT_EQ(Vni::from(16777215).value(), 16777215u);
  EXPECT_THROW(Vni::from(0), ParseError);
  EXPECT_THROW(Vni::from(16777216), ParseError);
  EXPECT_THROW(Vni::from(-5), ParseError);
}

TEST(Ids, AcceptAndReject) {
  EXPECT_EQ(HostId::parse("hv-1.rack_2").str(), "hv-1.rack_2");
  EXPECT_NO_THROW(PortId::parse(std::string(64, 'a')));
  for (const char* bad : {"", "-leading", ".dot", "has space", "slash/x", "ünïcode", "a\nb"}) {
    EXPECT_THROW(PortId::parse(bad), ParseError) << bad;
  }
  EXPECT_THROW(NetworkId::parse(std::string(65, 'a')), ParseError);
}
