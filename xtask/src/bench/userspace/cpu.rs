//! CPU time used by processes, from `/proc`: what a connection costs the machine, which
//! other load on it does not change the way it changes rates and latencies.

use std::time::Duration;

use anyhow::Context;

/// `/proc`'s clock ticks per second (`USER_HZ`, 100 on every Linux architecture kproxy
/// runs on).
const TICKS_PER_SECOND: u64 = 100;

/// CPU time (user and system) process `pid` has used, with every thread it ran, ended ones
/// included; `"self"`: this process. System time holds the packets the process's own
/// system calls pushed through the network stack (veth delivers in the sender's context).
pub(super) fn used(pid: &str) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).with_context(|| format!("/proc/{pid}/stat"))?;
    // After the command name (which may hold spaces): state is field 0, utime 11, stime 12.
    let fields: Vec<&str> = stat.rsplit_once(')').context("stat: no command name")?.1.split_whitespace().collect();
    let field = |i: usize| -> anyhow::Result<u64> { Ok(fields.get(i).context("stat: too short")?.parse()?) };
    let ticks = field(11)? + field(12)?;
    Ok(Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    #[test]
    fn own_cpu_time_grows_with_work_and_no_faster_than_the_clock() {
        let (before, started) = (super::used("self").unwrap(), Instant::now());
        let mut x = 0u64;
        let mut used = Duration::ZERO;
        while used < Duration::from_millis(50) && started.elapsed() < Duration::from_secs(20) {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
            used = super::used("self").unwrap() - before;
        }
        assert!(used >= Duration::from_millis(50), "no CPU time counted in {:?}", started.elapsed());
        let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        // One tick of rounding either way.
        let bound = started.elapsed() * u32::try_from(cpus).unwrap_or(u32::MAX) + Duration::from_millis(20);
        assert!(used <= bound, "{used:?} of CPU in {:?}", started.elapsed());
    }
}
