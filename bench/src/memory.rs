//! Resident memory of a server: its process and every descendant (Dovecot
//! forks a process per connection), read from /proc.

use std::collections::HashMap;
use std::fs;

/// Kilobytes of a `/proc/PID/status` or `smaps_rollup` field, e.g. `VmRSS:`.
fn field_kib(path: &str, name: &str) -> Option<u64> {
    let text = fs::read_to_string(path).ok()?;
    text.lines()
        .find(|line| line.starts_with(name))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// `pid` and all its descendants.
fn tree(pid: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(entries) = fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(child) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            // The parent is the 4th field, after "(comm)", which may hold spaces.
            let Ok(stat) = fs::read_to_string(format!("/proc/{child}/stat")) else {
                continue;
            };
            let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
                continue;
            };
            if let Some(parent) = after.split_whitespace().nth(1).and_then(|s| s.parse().ok()) {
                children.entry(parent).or_default().push(child);
            }
        }
    }
    let mut all = vec![pid];
    let mut next = 0;
    while next < all.len() {
        if let Some(kids) = children.get(&all[next]) {
            all.extend(kids);
        }
        next += 1;
    }
    all
}

/// Resident set of the process tree (RSS sum, and PSS sum, which counts a
/// page shared by k processes as 1/k), in KiB.
#[derive(Debug, Clone, Copy, Default)]
pub struct Resident {
    pub rss_kib: u64,
    pub pss_kib: u64,
    pub processes: usize,
}

pub fn resident(pid: u32) -> Resident {
    let pids = tree(pid);
    let mut total = Resident {
        processes: pids.len(),
        ..Resident::default()
    };
    for pid in pids {
        total.rss_kib += field_kib(&format!("/proc/{pid}/status"), "VmRSS:").unwrap_or(0);
        total.pss_kib += field_kib(&format!("/proc/{pid}/smaps_rollup"), "Pss:").unwrap_or(0);
    }
    total
}
