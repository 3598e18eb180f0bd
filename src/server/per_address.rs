//! Connections held per client address (`IMAP_MAX_CONNECTIONS_PER_IP`): one
//! address cannot take the whole process's connection slots. Entries live
//! exactly as long as a connection from their address does, so the table is
//! bounded by the connection cap.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::imap::penalty::client_key;

pub struct PerAddress {
    cap: u32,
    held: Mutex<HashMap<IpAddr, u32>>,
}

/// One connection's place in its address's count, given back when dropped
/// (however the connection ends).
pub struct Held {
    table: Arc<PerAddress>,
    key: IpAddr,
}

impl PerAddress {
    /// `cap` zero means no cap.
    pub fn new(cap: u32) -> Arc<PerAddress> {
        Arc::new(PerAddress {
            cap,
            held: Mutex::new(HashMap::new()),
        })
    }

    /// A place for one more connection from `ip`, unless it already holds `cap`.
    pub fn try_hold(self: &Arc<Self>, ip: IpAddr) -> Option<Held> {
        let key = client_key(ip);
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let count = held.entry(key).or_insert(0);
        if self.cap != 0 && *count >= self.cap {
            return None;
        }
        *count += 1;
        Some(Held {
            table: self.clone(),
            key,
        })
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut held = self.table.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = held.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_place_is_given_back_and_the_entry_goes_at_zero() {
        let table = PerAddress::new(2);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let first = table.try_hold(ip).unwrap();
        let _second = table.try_hold(ip).unwrap();
        assert!(table.try_hold(ip).is_none());
        assert!(table.try_hold("192.0.2.2".parse().unwrap()).is_some());
        drop(first);
        assert!(table.try_hold(ip).is_some());
        drop(_second);
        assert!(table.held.lock().unwrap().is_empty());
    }
}
