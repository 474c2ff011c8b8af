//! What a wrong password for the pages costs the one who gives it: each is
//! counted (`retentiond_ui_auth_failures_total`) and logged with the
//! client's address (at most [`LOG_LINES_PER_MINUTE`] lines a minute, so a
//! flood cannot fill the log), and each address may fail [`BURST`] times in
//! a row, then once every [`REFILL`]: until then its requests are refused
//! (429) before any password is looked at. Addresses are remembered in a
//! table of [`CAPACITY`] entries (IPv6 by its /64, what one host usually
//! holds): when it is full, the addresses that have recovered most are
//! forgotten, so a flood from many addresses cannot grow it, nor clear the
//! entries of the addresses it throttles.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Wrong passwords an address may give in a row.
pub const BURST: u32 = 5;
/// Then one more each time this has passed: ten a minute.
pub const REFILL: Duration = Duration::from_secs(6);
/// Addresses remembered at most.
pub const CAPACITY: usize = 4096;
/// Log lines about wrong passwords, at most, per minute.
pub const LOG_LINES_PER_MINUTE: u32 = 10;

/// The failures seen, per address and in the log.
pub struct Failures {
    table: Mutex<HashMap<IpAddr, Allowance>>,
    log: Mutex<Allowance>,
    /// Failures not logged since the last line that was.
    unlogged: Mutex<u64>,
}

impl Failures {
    pub fn new() -> Failures {
        Failures {
            table: Mutex::new(HashMap::new()),
            log: Mutex::new(Allowance::full(LOG_LINES_PER_MINUTE)),
            unlogged: Mutex::new(0),
        }
    }

    /// `Err(wait)` while `peer` has no try left: how long until it has one.
    pub fn check(&self, peer: IpAddr, now: Instant) -> Result<(), Duration> {
        let table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        match table.get(&key(peer)) {
            Some(allowance) => allowance.wait(now, BURST, REFILL),
            None => Ok(()),
        }
    }

    /// Records a wrong password from `peer`: counted, logged unless the log
    /// has had its share this minute, and taken from the address's tries.
    pub fn record(&self, peer: SocketAddr, now: Instant) {
        crate::metrics::ui_auth_failed();
        self.take_try(key(peer.ip()), now);
        let logged = self.log.lock().unwrap_or_else(|e| e.into_inner()).take(now, LOG_LINES_PER_MINUTE, LOG_REFILL);
        let mut unlogged = self.unlogged.lock().unwrap_or_else(|e| e.into_inner());
        if logged {
            tracing::warn!(
                %peer,
                not_logged_before = *unlogged,
                "status pages: wrong password (basic or bearer); repeated failures from one address are refused for a while"
            );
            *unlogged = 0;
        } else {
            *unlogged += 1;
        }
    }

    fn take_try(&self, key: IpAddr, now: Instant) {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if !table.contains_key(&key) && table.len() >= CAPACITY {
            forget_most_recovered(&mut table, now);
        }
        table.entry(key).or_insert_with(|| Allowance::full_at(BURST, now)).take(now, BURST, REFILL);
    }
}

impl Default for Failures {
    fn default() -> Self {
        Failures::new()
    }
}

/// The log's allowance refills one line every this long.
const LOG_REFILL: Duration = Duration::from_secs(60 / LOG_LINES_PER_MINUTE as u64);

/// The key of an address: IPv4 whole, IPv6 by its first 64 bits.
fn key(address: IpAddr) -> IpAddr {
    match address.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        v4 => v4,
    }
}

/// Makes room: forgets the quarter of the addresses that have recovered
/// most (those with every try back first), so a flood of new addresses
/// costs one sort per [`CAPACITY`]` / 4` of them.
fn forget_most_recovered(table: &mut HashMap<IpAddr, Allowance>, now: Instant) {
    let mut by_tries: Vec<(f64, IpAddr)> =
        table.iter().map(|(key, allowance)| (allowance.tries(now, BURST, REFILL), *key)).collect();
    let forgotten = (CAPACITY / 4).min(by_tries.len());
    if forgotten == 0 {
        return;
    }
    by_tries.select_nth_unstable_by(forgotten - 1, |a, b| b.0.total_cmp(&a.0));
    for (_, key) in &by_tries[..forgotten] {
        table.remove(key);
    }
}

/// Tries left, refilled by one every `refill` up to `burst` (a token bucket).
#[derive(Debug, Clone, Copy)]
struct Allowance {
    tries: f64,
    at: Option<Instant>,
}

impl Allowance {
    fn full(burst: u32) -> Allowance {
        Allowance { tries: f64::from(burst), at: None }
    }

    fn full_at(burst: u32, now: Instant) -> Allowance {
        Allowance { tries: f64::from(burst), at: Some(now) }
    }

    fn tries(&self, now: Instant, burst: u32, refill: Duration) -> f64 {
        let regained = self.at.map_or(0.0, |at| now.saturating_duration_since(at).as_secs_f64() / refill.as_secs_f64());
        (self.tries + regained).min(f64::from(burst))
    }

    fn wait(&self, now: Instant, burst: u32, refill: Duration) -> Result<(), Duration> {
        let tries = self.tries(now, burst, refill);
        if tries >= 1.0 { Ok(()) } else { Err(refill.mul_f64(1.0 - tries)) }
    }

    /// Takes a try; `false` when none was left (nothing is taken then).
    fn take(&mut self, now: Instant, burst: u32, refill: Duration) -> bool {
        let tries = self.tries(now, burst, refill);
        self.at = Some(now);
        if tries >= 1.0 {
            self.tries = tries - 1.0;
            true
        } else {
            self.tries = tries;
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(address: &str) -> SocketAddr {
        SocketAddr::new(address.parse().unwrap(), 40000)
    }

    #[test]
    fn an_address_is_refused_after_its_burst_and_tries_again_after_the_refill() {
        let failures = Failures::new();
        let start = Instant::now();
        let attacker = peer("192.0.2.7");
        for _ in 0..BURST {
            assert_eq!(failures.check(attacker.ip(), start), Ok(()));
            failures.record(attacker, start);
        }
        assert_eq!(failures.check(attacker.ip(), start), Err(REFILL));
        assert_eq!(failures.check("192.0.2.8".parse().unwrap(), start), Ok(()), "another address is not refused");
        assert_eq!(failures.check(attacker.ip(), start + REFILL / 2), Err(REFILL / 2));
        assert_eq!(failures.check(attacker.ip(), start + REFILL), Ok(()));
        // Ten tries in the minute after the burst is spent.
        let mut allowed = 0;
        for second in 1..=60u64 {
            let now = start + Duration::from_secs(second);
            if failures.check(attacker.ip(), now).is_ok() {
                failures.record(attacker, now);
                allowed += 1;
            }
        }
        assert_eq!(allowed, 10);
    }

    #[test]
    fn ipv6_addresses_of_one_64_share_their_tries() {
        let failures = Failures::new();
        let now = Instant::now();
        for host in 1..=BURST {
            failures.record(peer(&format!("2001:db8:1:2::{host:x}")), now);
        }
        assert!(failures.check("2001:db8:1:2:ffff::1".parse().unwrap(), now).is_err());
        assert!(failures.check("2001:db8:1:3::1".parse().unwrap(), now).is_ok());
        // An IPv4 address in IPv6 form is that IPv4 address.
        for _ in 0..BURST {
            failures.record(peer("::ffff:198.51.100.1"), now);
        }
        assert!(failures.check("198.51.100.1".parse().unwrap(), now).is_err());
    }

    /// A flood from more addresses than the table holds keeps it at its
    /// size and does not free the address it throttles.
    #[test]
    fn a_flood_from_many_addresses_neither_grows_the_table_nor_frees_the_throttled() {
        let failures = Failures::new();
        let now = Instant::now();
        let throttled = peer("203.0.113.1");
        for _ in 0..BURST {
            failures.record(throttled, now);
        }
        for n in 0..(2 * CAPACITY as u32) {
            failures.record(SocketAddr::new(IpAddr::V4(0x0a00_0000_u32.wrapping_add(n).into()), 1), now);
        }
        assert!(failures.table.lock().unwrap().len() <= CAPACITY);
        assert!(failures.check(throttled.ip(), now).is_err());
    }
}
