//! `--max-per-ip`: how many connections each client address has, so one host cannot take
//! more than its share of the server. Addresses without connections take no memory.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};

use crate::chat::messages;

/// Connections per client address, for `--max-per-ip`. IPv6 clients are counted per /64, the
/// block one host usually gets, or one host could pass the limit with new addresses.
pub(super) struct PerAddress {
    /// The limit; 0 counts nothing.
    max: u32,
    counts: HashMap<IpAddr, u32>,
    /// `! too many connections from your address (max N)`, worded once.
    pub(super) refusal: Vec<u8>,
}

impl PerAddress {
    /// At most `max` connections an address (0: no limit).
    pub(super) fn new(max: u32) -> Self {
        let mut refusal = Vec::new();
        messages::too_many_from_address(&mut refusal, max);
        Self {
            max,
            counts: HashMap::new(),
            refusal,
        }
    }

    /// Whether one more connection from `ip` is allowed.
    pub(super) fn admits(&self, ip: IpAddr) -> bool {
        self.max == 0
            || self
                .counts
                .get(&address_key(ip))
                .is_none_or(|&n| n < self.max)
    }

    /// Counts a connection from `ip`.
    pub(super) fn add(&mut self, ip: IpAddr) {
        if self.max > 0 {
            *self.counts.entry(address_key(ip)).or_insert(0) += 1;
        }
    }

    /// Forgets a connection from `ip`; an address without connections takes no memory.
    pub(super) fn remove(&mut self, ip: IpAddr) {
        if let Entry::Occupied(mut count) = self.counts.entry(address_key(ip)) {
            *count.get_mut() -= 1;
            if *count.get() == 0 {
                count.remove();
            }
        }
    }
}

/// What `--max-per-ip` counts a client address as: IPv4 as it is (also when it reaches an
/// IPv6 listener as `::ffff:a.b.c.d`), IPv6 by its /64.
fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & (u128::MAX << 64))),
        },
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an IP address")
    }

    #[test]
    fn addresses_are_counted_per_host_and_forgotten_at_zero() {
        let mut per = PerAddress::new(2);
        per.add(ip("192.0.2.1"));
        per.add(ip("::ffff:192.0.2.1"));
        assert!(
            !per.admits(ip("192.0.2.1")),
            "the IPv4 address and its mapped form are one host"
        );
        assert!(per.admits(ip("192.0.2.2")));
        per.remove(ip("192.0.2.1"));
        assert!(per.admits(ip("192.0.2.1")));
        per.remove(ip("192.0.2.1"));
        assert!(per.counts.is_empty());
        per.add(ip("2001:db8:1:2::1"));
        per.add(ip("2001:db8:1:2:ffff::9"));
        assert!(!per.admits(ip("2001:db8:1:2::5")), "one /64 is one host");
        assert!(per.admits(ip("2001:db8:1:3::1")));
        assert!(PerAddress::new(0).admits(ip("192.0.2.1")), "0 is no limit");
    }
}
