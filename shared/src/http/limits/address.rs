//! The client address a request comes from, as the rate limiter and the login throttle count
//! it, with the trust-proxy rule for `X-Real-IP`.

use std::net::IpAddr;

use axum::http::HeaderMap;

/// The client a request comes from, as the rate limiter and the login throttle count it: the
/// `X-Real-IP` the gateway set when `trust_proxy` is on and the connection comes from an
/// internal address (the gateway's), else the peer; an IPv6 address counts by its /64.
pub fn client_address(headers: &HeaderMap, peer: IpAddr, trust_proxy: bool) -> String {
    let behind_proxy = trust_proxy && internal(peer);
    let forwarded = behind_proxy
        .then(|| headers.get("x-real-ip")?.to_str().ok()?.trim().parse().ok())
        .flatten();
    client_key(forwarded.unwrap_or(peer))
}

/// Loopback or private: where a gateway in front of the service connects from.
fn internal(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private() || v4.is_link_local(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || (v6.segments()[0] & 0xfe00) == 0xfc00 // unique local
                || v6.to_ipv4_mapped().is_some_and(|v4| internal(IpAddr::V4(v4)))
        }
    }
}

/// An IPv4 address, or an IPv6 address's /64 (one host usually holds a whole /64).
fn client_key(address: IpAddr) -> String {
    match address {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn forwarded_addresses_count_only_from_an_internal_peer() {
        let mut headers = HeaderMap::new();
        headers.insert("x-real-ip", HeaderValue::from_static("203.0.113.9"));
        let from_gateway = client_address(&headers, "10.0.0.5".parse().unwrap(), true);
        assert_eq!(from_gateway, "203.0.113.9");
        let from_outside = client_address(&headers, "198.51.100.1".parse().unwrap(), true);
        assert_eq!(from_outside, "198.51.100.1", "a spoofed header is ignored");
        let untrusted = client_address(&headers, "10.0.0.5".parse().unwrap(), false);
        assert_eq!(untrusted, "10.0.0.5", "trust_proxy off");
        let v6 = client_address(
            &HeaderMap::new(),
            "2001:db8:1:2:3:4:5:6".parse().unwrap(),
            true,
        );
        assert_eq!(v6, "2001:db8:1:2::/64");
    }
}
