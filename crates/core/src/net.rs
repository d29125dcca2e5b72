//! Network addresses as the policy allows them to be kept.

use std::net::IpAddr;

/// The network an address belongs to: /24 for IPv4, /48 for IPv6 (the policy's truncation).
pub fn truncate_ip(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_cut_to_their_network() {
        assert_eq!(truncate_ip("203.0.113.77".parse().expect("ip")), "203.0.113.0/24");
        assert_eq!(truncate_ip("2001:db8:85a3:8d3:1319:8a2e:370:7348".parse().expect("ip")), "2001:db8:85a3::/48");
    }
}
