//! Failed logins slow down the address they come from, as Dovecot's auth
//! penalty does: guessing tokens from one address gets exponentially slower,
//! while every other address is served as before.
//!
//! After `FREE_FAILURES` failures within `WINDOW`, each further attempt from
//! that address waits 2^(n-3) seconds (n failures so far), at most
//! `IMAP_AUTH_PENALTY_MAX`, *before* it is checked: a penalised attempt costs
//! no directory lookup (no Supabase request) until its delay has passed. A
//! success from the address forgives it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures forgiven without delay.
const FREE_FAILURES: u32 = 3;
/// How long a failure counts.
const WINDOW: Duration = Duration::from_secs(10 * 60);
/// Addresses remembered at most: the table's memory is bounded whatever the
/// number of addresses an attacker controls. Past it, expired entries are
/// dropped; if none are, a new address goes unrecorded rather than evict one
/// that is being slowed.
const MAX_TRACKED: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

/// How often a full table may be swept for expired entries: an attacker
/// with more addresses than the table holds must not make every failure an
/// O(n) walk.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

#[derive(Default)]
struct Table {
    by_address: HashMap<IpAddr, Failures>,
    swept: Option<Instant>,
}

pub struct LoginPenalties {
    max: Duration,
    /// Held only for O(1) work (and a sweep at most every `SWEEP_EVERY`),
    /// never across an await.
    table: Mutex<Table>,
}

/// The unit of accountability for a client address: an IPv4 address, or the
/// /64 an IPv6 host normally gets (one host has billions of addresses in it).
/// IPv4-mapped IPv6 addresses count as the IPv4 address they are.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

impl LoginPenalties {
    /// `max` zero turns penalties off.
    pub fn new(max: Duration) -> LoginPenalties {
        LoginPenalties {
            max,
            table: Mutex::new(Table::default()),
        }
    }

    /// How long the next attempt from `ip` must wait before it is checked.
    pub fn delay(&self, ip: IpAddr) -> Duration {
        if self.max.is_zero() {
            return Duration::ZERO;
        }
        let table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        match table.by_address.get(&client_key(ip)) {
            Some(failures) if failures.last.elapsed() < WINDOW => self.penalty(failures.count),
            _ => Duration::ZERO,
        }
    }

    fn penalty(&self, failures: u32) -> Duration {
        if failures < FREE_FAILURES {
            return Duration::ZERO;
        }
        // 2^16 s is far past any sensible cap; the shift cannot overflow.
        let exponent = (failures - FREE_FAILURES).min(16);
        Duration::from_secs(1u64 << exponent).min(self.max)
    }

    /// Records a failed attempt from `ip`.
    pub fn failed(&self, ip: IpAddr) {
        if self.max.is_zero() {
            return;
        }
        let key = client_key(ip);
        let now = Instant::now();
        let mut guard = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let table = &mut *guard;
        if table.by_address.len() >= MAX_TRACKED && !table.by_address.contains_key(&key) {
            if table
                .swept
                .is_none_or(|at| now.duration_since(at) >= SWEEP_EVERY)
            {
                table.swept = Some(now);
                table
                    .by_address
                    .retain(|_, failures| now.duration_since(failures.last) < WINDOW);
            }
            if table.by_address.len() >= MAX_TRACKED {
                return;
            }
        }
        let entry = table.by_address.entry(key).or_insert(Failures {
            count: 0,
            last: now,
        });
        if now.duration_since(entry.last) >= WINDOW {
            entry.count = 0;
        }
        entry.count = entry.count.saturating_add(1);
        entry.last = now;
    }

    /// A success from `ip` forgives its failures.
    pub fn succeeded(&self, ip: IpAddr) {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        table.by_address.remove(&client_key(ip));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_after_three_failures_up_to_the_cap() {
        let penalties = LoginPenalties::new(Duration::from_secs(15));
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let mut delays = Vec::new();
        for _ in 0..8 {
            delays.push(penalties.delay(ip).as_secs());
            penalties.failed(ip);
        }
        assert_eq!(delays, vec![0, 0, 0, 1, 2, 4, 8, 15]);
        assert_eq!(
            penalties.delay("192.0.2.8".parse().unwrap()),
            Duration::ZERO
        );
        penalties.succeeded(ip);
        assert_eq!(penalties.delay(ip), Duration::ZERO);
    }

    #[test]
    fn an_ipv6_host_is_one_address_and_zero_turns_penalties_off() {
        let penalties = LoginPenalties::new(Duration::from_secs(15));
        for last in 1..=4 {
            penalties.failed(format!("2001:db8::{last}").parse().unwrap());
        }
        assert_eq!(
            penalties.delay("2001:db8::ffff".parse().unwrap()),
            Duration::from_secs(2)
        );
        assert_eq!(
            client_key("::ffff:192.0.2.1".parse().unwrap()),
            "192.0.2.1".parse::<IpAddr>().unwrap()
        );
        let off = LoginPenalties::new(Duration::ZERO);
        for _ in 0..10 {
            off.failed("192.0.2.9".parse().unwrap());
        }
        assert_eq!(off.delay("192.0.2.9".parse().unwrap()), Duration::ZERO);
    }
}
