//! How much of the machine's CPU other processes took during a row: a
//! benchmark row is only as good as the cores it had, and on a shared
//! machine a busy neighbour can make any system look slow.
//!
//! It compares this process's CPU time (`/proc/self/stat`: every thread, so
//! the embedded mock API and the systems under test are both "self") with
//! the whole machine's (`/proc/stat`), both in clock ticks. Whatever the
//! machine was busy with that this process was not is "others". Hand-written
//! because it is two text files and a subtraction; a crate such as `procfs`
//! or `sysinfo` would bring far more than this needs. Off Linux (no `/proc`)
//! every figure is `None`.

/// Above this share of the machine's CPU time taken by other processes, a
/// row is flagged as measured under contention.
///
/// 10%: on 2 cores that is a fifth of a core, about what a compiler
/// job or a browser tab takes; less is the usual background of a desktop or
/// a CI runner and moves the figures by less than their own repeat spread.
pub const CONTENTION_THRESHOLD: f64 = 0.10;

/// CPU time counters at one moment, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuSample {
    /// This process: user + system time of all its threads.
    pub process: u64,
    /// The machine: every CPU's busy time (user, nice, system, irq,
    /// softirq, steal).
    pub busy: u64,
    /// The machine: every CPU's time, busy or idle.
    pub total: u64,
}

impl CpuSample {
    /// The counters now; `None` where `/proc` cannot be read.
    pub fn now() -> Option<CpuSample> {
        let own = std::fs::read_to_string("/proc/self/stat").ok()?;
        let machine = std::fs::read_to_string("/proc/stat").ok()?;
        Self::parse(&own, &machine)
    }

    /// The counters from the text of `/proc/self/stat` and `/proc/stat`.
    pub fn parse(own_stat: &str, proc_stat: &str) -> Option<CpuSample> {
        // The command name may hold spaces and parentheses: fields are
        // counted from the last ')'; utime and stime are fields 14 and 15,
        // the 12th and 13th after it.
        let after = &own_stat[own_stat.rfind(')')? + 1..];
        let mut fields = after.split_whitespace().skip(11);
        let utime: u64 = fields.next()?.parse().ok()?;
        let stime: u64 = fields.next()?.parse().ok()?;
        let line = proc_stat.lines().find(|l| l.starts_with("cpu "))?;
        let v: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .map(|x| x.parse().ok())
            .collect::<Option<_>>()?;
        let at = |i: usize| v.get(i).copied().unwrap_or(0);
        // user nice system idle iowait irq softirq steal (guest time is
        // already inside user and nice).
        let busy = at(0) + at(1) + at(2) + at(5) + at(6) + at(7);
        let total = busy + at(3) + at(4);
        Some(CpuSample {
            process: utime + stime,
            busy,
            total,
        })
    }

    /// The share of the machine's CPU time (0 to 1) that other processes
    /// used between `earlier` and `self`; `None` if no tick passed.
    pub fn others_since(&self, earlier: &CpuSample) -> Option<f64> {
        let total = self.total.checked_sub(earlier.total)?;
        if total == 0 {
            return None;
        }
        let busy = self.busy.saturating_sub(earlier.busy);
        let own = self.process.saturating_sub(earlier.process);
        Some((busy.saturating_sub(own) as f64 / total as f64).clamp(0.0, 1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWN: &str = "4242 (gear shift) bench) R 1 2 3 4 5 6 7 8 9 10 120 30 0 0 20 0 9";
    const MACHINE: &str = "cpu  1000 0 200 5000 100 0 0 0 0 0\ncpu0 500 0 100 2500 50 0 0 0 0 0\n";

    #[test]
    fn parses_both_files_with_a_tricky_command_name() {
        let s = CpuSample::parse(OWN, MACHINE).unwrap();
        assert_eq!(
            s,
            CpuSample {
                process: 150,
                busy: 1200,
                total: 6300
            }
        );
    }

    #[test]
    fn others_are_the_machine_busy_time_not_ours() {
        let a = CpuSample {
            process: 100,
            busy: 1000,
            total: 5000,
        };
        // 400 ticks passed, 200 of them busy: 150 ours, so others took
        // 50 / 400.
        let b = CpuSample {
            process: 250,
            busy: 1200,
            total: 5400,
        };
        assert_eq!(b.others_since(&a), Some(0.125));
        assert_eq!(a.others_since(&a), None);
    }

    #[test]
    fn reads_this_machine_where_proc_exists() {
        if std::path::Path::new("/proc/stat").exists() {
            let s = CpuSample::now().expect("readable /proc");
            assert!(s.total >= s.busy && s.busy > 0);
        }
    }
}
