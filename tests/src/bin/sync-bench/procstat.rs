//! CPU time and memory of a process, read from `/proc`.

use std::time::Duration;

/// CPU time and memory of one process at one moment.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sample {
    /// User plus system CPU time, all threads.
    pub cpu: Duration,
    /// Resident set size now.
    pub rss_bytes: u64,
    /// Peak resident set size so far (`VmHWM`).
    pub peak_rss_bytes: u64,
}

/// Clock ticks per second of `/proc/PID/stat`: `getconf CLK_TCK`, which is 100 on every
/// Linux we know of; asked once rather than assumed.
fn ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// Reads `/proc/PID/stat` and `/proc/PID/status`; `None` when the process is gone.
pub fn sample(pid: u32) -> Option<Sample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces; fields after its closing ')' are plain.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |k| k * 1024)
    };
    Some(Sample {
        cpu: Duration::from_secs_f64(ticks as f64 / ticks_per_second()),
        rss_bytes: kib("VmRSS:"),
        peak_rss_bytes: kib("VmHWM:"),
    })
}

/// The processes a phase's CPU time is split between, by name.
#[derive(Clone, Debug, Default)]
pub struct CpuMeter {
    procs: Vec<(String, u32)>,
}

/// The CPU time of each metered process, and of the whole machine, at one moment.
#[derive(Clone, Debug)]
pub struct CpuSnapshot {
    by_process: Vec<(String, Option<Duration>)>,
    machine: Option<MachineTicks>,
}

/// `/proc/stat`'s first line: ticks spent busy and in total, every CPU together.
#[derive(Clone, Copy, Debug)]
struct MachineTicks {
    busy: u64,
    total: u64,
}

fn machine_ticks() -> Option<MachineTicks> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user already).
    let at = |i: usize| f.get(i).copied().unwrap_or(0);
    let busy = at(0) + at(1) + at(2) + at(5) + at(6) + at(7);
    Some(MachineTicks {
        busy,
        total: busy + at(3) + at(4),
    })
}

impl CpuMeter {
    /// Meters `pid` under `name` too.
    pub fn add(&mut self, name: impl Into<String>, pid: u32) {
        self.procs.push((name.into(), pid));
    }

    /// The CPU time of every metered process (`None` once it has exited) and of the machine.
    pub fn snapshot(&self) -> CpuSnapshot {
        CpuSnapshot {
            by_process: self
                .procs
                .iter()
                .map(|(name, pid)| (name.clone(), sample(*pid).map(|s| s.cpu)))
                .collect(),
            machine: machine_ticks(),
        }
    }
}

impl CpuSnapshot {
    /// The CPU seconds spent from `self` to `later`, as a JSON object: one entry per process
    /// that ran throughout, `other` for the rest of the machine's busy time (other processes,
    /// the kernel), `machine_busy` and `machine_capacity` (wall time × CPUs).
    pub fn split_until(&self, later: &CpuSnapshot) -> serde_json::Value {
        let ticks = ticks_per_second();
        let mut out = serde_json::Map::new();
        let mut metered = 0.0;
        for ((name, a), (_, b)) in self.by_process.iter().zip(&later.by_process) {
            if let (Some(a), Some(b)) = (a, b) {
                let s = round2(b.saturating_sub(*a).as_secs_f64());
                metered += s;
                out.insert(name.clone(), s.into());
            }
        }
        if let (Some(a), Some(b)) = (self.machine, later.machine) {
            let busy = b.busy.saturating_sub(a.busy) as f64 / ticks;
            out.insert("other".into(), round2((busy - metered).max(0.0)).into());
            out.insert("machine_busy".into(), round2(busy).into());
            out.insert(
                "machine_capacity".into(),
                round2(b.total.saturating_sub(a.total) as f64 / ticks).into(),
            );
        }
        serde_json::Value::Object(out)
    }
}

fn round2(s: f64) -> f64 {
    (s * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    #[test]
    fn this_process_has_cpu_time_and_memory() {
        let s = super::sample(std::process::id()).unwrap();
        assert!(s.rss_bytes > 0 && s.peak_rss_bytes >= s.rss_bytes);
    }

    #[test]
    fn a_split_names_each_process_and_the_rest_of_the_machine() {
        let mut meter = super::CpuMeter::default();
        meter.add("bench", std::process::id());
        meter.add("gone", u32::MAX);
        let a = meter.snapshot();
        let mut x = 0u64;
        let spin = std::time::Instant::now();
        while spin.elapsed() < std::time::Duration::from_millis(300) {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        let split = a.split_until(&meter.snapshot());
        assert!(x > 0);
        assert!(split["bench"].as_f64().unwrap() > 0.0, "{split}");
        assert!(split.get("gone").is_none(), "{split}");
        let busy = split["machine_busy"].as_f64().unwrap();
        assert!(busy >= split["bench"].as_f64().unwrap() - 0.02, "{split}");
        assert!(
            split["machine_capacity"].as_f64().unwrap() >= busy,
            "{split}"
        );
    }
}
