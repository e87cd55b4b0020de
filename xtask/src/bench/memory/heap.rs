//! Where the daemon's heap goes: the daemon built with `heap-profile` (DHAT records every
//! allocation with its call stack) on the loaded cluster; its profile, written once the
//! memory is steady, gives the heap at the peak and at that moment by allocation site.
//! Each site is named after the innermost kproxy functions on its stack.

use std::collections::BTreeMap;

use anyhow::Context;
use serde_json::Value;

use super::daemon::{self, HeapRun, Source};
use super::{ENDPOINTS, SERVICES};
use crate::bench::Row;

/// How many owners the table lists.
const TOP: usize = 25;
/// How many kproxy frames name an owner (innermost first).
const OWNER_FRAMES: usize = 2;

/// Profiles the daemon fed from `source`; prints the top owners, returns the totals.
pub(crate) fn run(source: Source) -> anyhow::Result<Vec<Row>> {
    let binary = profiled_binary()?;
    let profile = daemon::profile_path(source);
    let heap = Some(HeapRun { binary: &binary, profile: &profile });
    let measured = daemon::measure(source, SERVICES, ENDPOINTS, heap, &daemon::Setup::PLAIN)?;
    let text = std::fs::read_to_string(&profile).with_context(|| format!("read {}", profile.display()))?;
    let _ = std::fs::remove_file(&profile);
    let owners = Owners::parse(&serde_json::from_str(&text)?)?;
    owners.print(source);
    let what = format!("{SERVICES} svc x {ENDPOINTS} ep ({})", source.name());
    let row = |name: &str, bytes: u64| Row {
        name: format!("daemon heap {name}, {what} (DHAT)"),
        value: format!("{:.1} MiB ({:.0} B/svc)", bytes as f64 / 1048576.0, bytes as f64 / SERVICES as f64),
        baseline: format!("RSS under DHAT: peak {:.1} MiB", measured.peak_kib as f64 / 1024.0),
        ratio: None,
        goal: "-".to_owned(),
    };
    Ok(vec![row("at peak", owners.total_peak), row("steady", owners.total_steady)])
}

/// Builds the daemon with `heap-profile` and copies it aside, then restores the plain build
/// (both stay cached: switching back only relinks).
fn profiled_binary() -> anyhow::Result<std::path::PathBuf> {
    let release = crate::target_dir().join("release");
    crate::cargo(&["build", "--quiet", "--release", "-p", "kproxy", "--features", "heap-profile"])?;
    let binary = release.join("kproxy-heap-profile");
    std::fs::copy(release.join("kproxy"), &binary)?;
    crate::cargo(&["build", "--quiet", "--release", "-p", "kproxy"])?;
    Ok(binary)
}

/// Bytes by owner at the peak and at the end of a DHAT profile.
struct Owners {
    total_peak: u64,
    total_steady: u64,
    /// Owner → (bytes at the peak, bytes at the end, blocks at the end).
    by_owner: BTreeMap<String, (u64, u64, u64)>,
}

impl Owners {
    fn parse(profile: &Value) -> anyhow::Result<Self> {
        let frames: Vec<&str> =
            profile["ftbl"].as_array().context("no ftbl")?.iter().map(|f| f.as_str().unwrap_or("?")).collect();
        let mut owners = Self { total_peak: 0, total_steady: 0, by_owner: BTreeMap::new() };
        for pp in profile["pps"].as_array().context("no pps")? {
            let number = |key: &str| pp[key].as_u64().unwrap_or(0);
            let (peak, steady, blocks) = (number("gb"), number("eb"), number("ebk"));
            owners.total_peak += peak;
            owners.total_steady += steady;
            let stack = pp["fs"].as_array().map(Vec::as_slice).unwrap_or_default();
            let names = stack.iter().filter_map(Value::as_u64).filter_map(|i| frames.get(i as usize).copied());
            let slot = owners.by_owner.entry(owner(names)).or_default();
            slot.0 += peak;
            slot.1 += steady;
            slot.2 += blocks;
        }
        Ok(owners)
    }

    fn print(&self, source: Source) {
        let mut rows: Vec<_> = self.by_owner.iter().collect();
        for (title, key) in [("at the peak", 0), ("steady", 1)] {
            rows.sort_by_key(|(_, v)| std::cmp::Reverse(if key == 0 { v.0 } else { v.1 }));
            let total = if key == 0 { self.total_peak } else { self.total_steady };
            println!("\nheap {title} ({}): {:.1} MiB; top owners", source.name(), total as f64 / 1048576.0);
            println!("| MiB | B/svc | blocks now | owner (innermost kproxy frames) |\n|---|---|---|---|");
            for (owner, (peak, steady, blocks)) in rows.iter().take(TOP) {
                let bytes = if key == 0 { *peak } else { *steady };
                let per = bytes as f64 / SERVICES as f64;
                println!("| {:.1} | {per:.0} | {blocks} | {owner} |", bytes as f64 / 1048576.0);
            }
        }
    }
}

/// An allocation site's owner: its innermost kproxy frames, or its innermost frame.
fn owner<'a>(frames: impl Iterator<Item = &'a str>) -> String {
    let frames: Vec<String> = frames.map(function).collect();
    let ours: Vec<&str> = frames.iter().map(String::as_str).filter(|f| is_ours(f)).take(OWNER_FRAMES).collect();
    if ours.is_empty() {
        return frames.first().cloned().unwrap_or_else(|| "?".to_owned());
    }
    ours.join(" < ")
}

fn is_ours(function: &str) -> bool {
    ["kproxy_", "kproxy::"].iter().any(|p| function.contains(p)) && !function.contains("heap_profile")
}

/// `0x1234: path::to::function::h0123456789abcdef (file:line:col)` → `path::to::function`.
fn function(frame: &str) -> String {
    let name = frame.split_once(": ").map_or(frame, |(_, rest)| rest);
    let name = name.split(" (").next().unwrap_or(name);
    match name.rsplit_once("::h") {
        Some((head, hash)) if hash.len() == 16 && hash.chars().all(|c| c.is_ascii_hexdigit()) => head.to_owned(),
        _ => name.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_is_the_innermost_kproxy_frames_without_hashes() {
        let frames = [
            "0x1: alloc::raw_vec::finish_grow::h0123456789abcdef",
            "0x2: kproxy_core::endpoint_slice_cache::endpoints_by_port::h0123456789abcdef",
            "0x3: kproxy_core::change_tracker::ChangeTracker::checkout_into::hfedcba9876543210 (src/x.rs:1:2)",
            "0x4: kproxy_core::proxy_loop::ProxyLoop::sync::h0000000000000000",
        ];
        assert_eq!(
            owner(frames.into_iter()),
            "kproxy_core::endpoint_slice_cache::endpoints_by_port < kproxy_core::change_tracker::ChangeTracker::checkout_into"
        );
        assert_eq!(owner(["0x1: hashbrown::raw::RawTable::reserve"].into_iter()), "hashbrown::raw::RawTable::reserve");
    }

    #[test]
    fn totals_and_owners_come_from_the_peak_and_end_bytes() {
        let profile = serde_json::json!({
            "ftbl": ["[root]", "0x1: kproxy_core::a::h0123456789abcdef", "0x2: std::b"],
            "pps": [
                {"gb": 100, "eb": 10, "ebk": 1, "fs": [2, 1]},
                {"gb": 50, "eb": 0, "ebk": 0, "fs": [2]},
            ],
        });
        let owners = Owners::parse(&profile).unwrap();
        assert_eq!((owners.total_peak, owners.total_steady), (150, 10));
        assert_eq!(owners.by_owner["kproxy_core::a"], (100, 10, 1));
        assert_eq!(owners.by_owner["std::b"], (50, 0, 0));
    }
}
