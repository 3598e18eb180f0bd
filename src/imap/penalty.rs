//! Failed logins slow down the address they come from, as Dovecot's auth
//! penalty does: guessing tokens from one address gets exponentially slower,
//! while every other address is served as before.
//!
//! After `FREE_FAILURES` failures within `WINDOW`, each further attempt from
//! that address waits 2^(n-3) seconds (n failures so far), at most
//! `IMAP_AUTH_PENALTY_MAX`, *before* it is checked: a penalised attempt costs
//! no directory lookup (no Supabase request) until its delay has passed. A
//! success from the address forgives it.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures forgiven without delay.
const FREE_FAILURES: u32 = 3;
/// How long a failure counts: an address is forgotten this long after its
/// last failure.
const WINDOW: Duration = Duration::from_secs(10 * 60);
/// Failures remembered at most, and so addresses: the table's memory is
/// bounded whatever the number of addresses an attacker controls. Past it,
/// the address whose last failure is the oldest is forgotten.
const MAX_TRACKED: usize = 100_000;
/// Records looked at, besides the one a failure adds, to forget what has
/// expired: a constant, so that no failure ever walks the table.
const FORGET_PER_FAILURE: usize = 2;

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
    /// Which record in `Table::order` is this address's latest.
    record: u64,
}

/// The failures of each address, and the order to forget them in.
#[derive(Default)]
struct Table {
    by_address: HashMap<IpAddr, Failures>,
    /// One record per failure, oldest first. A record that is no longer its
    /// address's latest (a later failure or a success came after it) is
    /// stale and skipped: every address in `by_address` has exactly one
    /// record that is not, so the map never outgrows this queue.
    order: VecDeque<Record>,
    next_record: u64,
}

#[derive(Debug, Clone, Copy)]
struct Record {
    key: IpAddr,
    id: u64,
    at: Instant,
}

impl Table {
    /// Drops the oldest record, and its address if the record was the
    /// address's latest.
    fn forget_oldest(&mut self) {
        if let Some(oldest) = self.order.pop_front()
            && self.is_latest(&oldest)
        {
            self.by_address.remove(&oldest.key);
        }
    }

    fn is_latest(&self, record: &Record) -> bool {
        self.by_address
            .get(&record.key)
            .is_some_and(|failures| failures.record == record.id)
    }

    /// Forgets, from the front, records that are stale or expired; at most
    /// `FORGET_PER_FAILURE` of them.
    fn forget_expired(&mut self, now: Instant) {
        for _ in 0..FORGET_PER_FAILURE {
            match self.order.front() {
                Some(oldest)
                    if !self.is_latest(oldest) || now.duration_since(oldest.at) >= WINDOW =>
                {
                    self.forget_oldest();
                }
                _ => return,
            }
        }
    }
}

pub struct LoginPenalties {
    max: Duration,
    capacity: usize,
    /// Held only for O(1) work, never across an await.
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
        LoginPenalties::with_capacity(max, MAX_TRACKED)
    }

    fn with_capacity(max: Duration, capacity: usize) -> LoginPenalties {
        LoginPenalties {
            max,
            capacity: capacity.max(1),
            table: Mutex::new(Table::default()),
        }
    }

    /// How long the next attempt from `ip` must wait before it is checked.
    pub fn delay(&self, ip: IpAddr) -> Duration {
        self.delay_at(ip, Instant::now())
    }

    fn delay_at(&self, ip: IpAddr, now: Instant) -> Duration {
        if self.max.is_zero() {
            return Duration::ZERO;
        }
        let table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        match table.by_address.get(&client_key(ip)) {
            Some(failures) if now.duration_since(failures.last) < WINDOW => {
                self.penalty(failures.count)
            }
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
        self.failed_at(ip, Instant::now());
    }

    fn failed_at(&self, ip: IpAddr, now: Instant) {
        if self.max.is_zero() {
            return;
        }
        let key = client_key(ip);
        let mut guard = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let table = &mut *guard;
        table.forget_expired(now);
        // The queue grows by one record per failure and is cut back to
        // `capacity` here, so this runs at most once.
        while table.order.len() >= self.capacity {
            table.forget_oldest();
        }
        let id = table.next_record;
        table.next_record += 1;
        let failures = table.by_address.entry(key).or_insert(Failures {
            count: 0,
            last: now,
            record: id,
        });
        if now.duration_since(failures.last) >= WINDOW {
            failures.count = 0;
        }
        failures.count = failures.count.saturating_add(1);
        failures.last = now;
        failures.record = id;
        table.order.push_back(Record { key, id, at: now });
    }

    /// A success from `ip` forgives its failures.
    pub fn succeeded(&self, ip: IpAddr) {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        // Its records become stale and leave the queue in their turn.
        table.by_address.remove(&client_key(ip));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn delays_double_after_three_failures_up_to_the_cap() {
        let penalties = LoginPenalties::new(Duration::from_secs(15));
        let ip = ip("192.0.2.7");
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

    #[test]
    fn failures_are_forgotten_a_window_after_the_last_one() {
        let penalties = LoginPenalties::new(Duration::from_secs(15));
        let start = Instant::now();
        let guesser = ip("192.0.2.1");
        for _ in 0..4 {
            penalties.failed_at(guesser, start);
        }
        let almost = start + WINDOW - Duration::from_secs(1);
        assert_eq!(penalties.delay_at(guesser, almost), Duration::from_secs(2));
        let later = start + WINDOW;
        assert_eq!(penalties.delay_at(guesser, later), Duration::ZERO);
        // Counting starts again rather than carrying on from four.
        penalties.failed_at(guesser, later);
        assert_eq!(penalties.delay_at(guesser, later), Duration::ZERO);
        // Other failures sweep the expired records out, a few at a time.
        for n in 0..10 {
            penalties.failed_at(ip(&format!("198.51.100.{n}")), later);
        }
        let table = penalties.table.lock().unwrap();
        assert!(
            table.order.iter().all(|r| r.at == later),
            "expired records were kept"
        );
    }

    #[test]
    fn a_full_table_forgets_the_address_that_failed_longest_ago() {
        let penalties = LoginPenalties::with_capacity(Duration::from_secs(15), 8);
        let start = Instant::now();
        let oldest = ip("192.0.2.1");
        let recent = ip("192.0.2.2");
        for _ in 0..4 {
            penalties.failed_at(oldest, start);
        }
        for _ in 0..4 {
            penalties.failed_at(recent, start + Duration::from_secs(1));
        }
        // A newcomer fills the table: the oldest address goes first, the
        // recent one stays penalised.
        let now = start + Duration::from_secs(2);
        for _ in 0..4 {
            penalties.failed_at(ip("192.0.2.3"), now);
        }
        assert_eq!(penalties.delay_at(oldest, now), Duration::ZERO);
        assert_eq!(penalties.delay_at(recent, now), Duration::from_secs(2));
        // However many addresses fail, the table holds at most its capacity.
        for n in 0..1000 {
            penalties.failed_at(ip(&format!("203.0.113.{}", n % 250)), now);
        }
        let table = penalties.table.lock().unwrap();
        assert!(table.order.len() <= 8, "{} records", table.order.len());
        assert!(table.by_address.len() <= table.order.len());
    }
}
