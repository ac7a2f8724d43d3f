//! CPU time from /proc (Linux): of this process's threads by name, and of the PostgreSQL
//! processes that serve one database. A figure per command that does not depend on what else
//! runs on the machine, unlike throughput; elsewhere than Linux every reading is zero.

use std::path::Path;
use std::time::Duration;

/// Clock ticks per second of utime/stime in /proc: USER_HZ, 100 on every Linux architecture
/// (asking sysconf would take unsafe code, which the workspace forbids).
const TICKS_PER_SECOND: u64 = 100;

/// CPU used so far by the server under test (threads named `thread_prefix`), by the rest of
/// this process (the benchmark's own clients), by PostgreSQL for the benchmark's database, and
/// by the whole machine.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CpuSample {
    server: Duration,
    process: Duration,
    postgres: Duration,
    machine: MachineTicks,
}

/// Where a phase's CPU went, per command (or per baseline insert).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct CpuPerCommand {
    /// µs of the server's threads.
    pub(crate) server_us: f64,
    /// µs of this process's other threads: the benchmark's clients, which share the machine.
    pub(crate) client_us: f64,
    /// µs of the PostgreSQL processes that serve the benchmark's database.
    pub(crate) postgres_us: f64,
    /// Share of the machine's CPU time busy during the phase, 0–1: whether the cores were the
    /// limit.
    pub(crate) machine_busy: f64,
}

impl CpuSample {
    pub(crate) fn now(thread_prefix: &str, database: &str) -> Self {
        Self {
            server: threads_cpu(thread_prefix),
            process: process_cpu(),
            postgres: postgres_cpu(database),
            machine: MachineTicks::now(),
        }
    }
}

/// CPU summed over several stretches of time: the rounds of one phase, which alternate with
/// the rounds of another.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CpuSpent {
    server: Duration,
    process: Duration,
    postgres: Duration,
    machine: MachineTicks,
}

impl CpuSpent {
    /// Adds what was spent from `from` to `to`.
    pub(crate) fn add(&mut self, from: &CpuSample, to: &CpuSample) {
        self.server += to.server.saturating_sub(from.server);
        self.process += to.process.saturating_sub(from.process);
        self.postgres += to.postgres.saturating_sub(from.postgres);
        self.machine.busy += to.machine.busy.saturating_sub(from.machine.busy);
        self.machine.idle += to.machine.idle.saturating_sub(from.machine.idle);
    }

    /// What was spent, per command.
    pub(crate) fn per_command(&self, commands: u64) -> CpuPerCommand {
        let per = |spent: Duration| spent.as_secs_f64() * 1e6 / commands.max(1) as f64;
        let server_us = per(self.server);
        CpuPerCommand {
            server_us,
            client_us: (per(self.process) - server_us).max(0.0),
            postgres_us: per(self.postgres),
            machine_busy: self.machine.busy_share(),
        }
    }
}

/// The first line of /proc/stat: the machine's busy and idle ticks over all cores.
#[derive(Debug, Clone, Copy, Default)]
struct MachineTicks {
    busy: u64,
    idle: u64,
}

impl MachineTicks {
    fn now() -> Self {
        std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| Self::parse(s.lines().next()?))
            .unwrap_or_default()
    }

    /// `cpu  user nice system idle iowait irq softirq steal …`: idle and iowait are idle time,
    /// the rest (up to steal; guest time is already inside user) is busy.
    fn parse(line: &str) -> Option<Self> {
        let fields: Vec<u64> = line
            .strip_prefix("cpu ")?
            .split_whitespace()
            .take(8)
            .map(|f| f.parse().ok())
            .collect::<Option<_>>()?;
        let [user, nice, system, idle, iowait, irq, softirq, steal] = fields[..] else {
            return None;
        };
        Some(Self {
            busy: user + nice + system + irq + softirq + steal,
            idle: idle + iowait,
        })
    }

    /// The busy share of these ticks, 0–1 (0 when there are none).
    fn busy_share(&self) -> f64 {
        let (busy, idle) = (self.busy as f64, self.idle as f64);
        if busy + idle == 0.0 {
            0.0
        } else {
            busy / (busy + idle)
        }
    }
}

/// utime + stime (fields 14 and 15) of a /proc stat line, in ticks. The name (field 2) may hold
/// spaces and parentheses, so fields are counted from its closing parenthesis.
fn stat_ticks(stat: &str) -> Option<u64> {
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

fn ticks(dir: &Path) -> u64 {
    std::fs::read_to_string(dir.join("stat"))
        .ok()
        .and_then(|s| stat_ticks(&s))
        .unwrap_or(0)
}

fn named(dir: &Path, prefix: &str) -> bool {
    std::fs::read_to_string(dir.join("comm")).is_ok_and(|name| name.starts_with(prefix))
}

fn as_duration(ticks: u64) -> Duration {
    Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND)
}

/// CPU used so far by this process's threads whose name starts with `prefix`. A thread that
/// ended takes its time with it: the server's worker threads live as long as its runtime.
fn threads_cpu(prefix: &str) -> Duration {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    as_duration(
        tasks
            .flatten()
            .map(|t| t.path())
            .filter(|dir| named(dir, prefix))
            .map(|dir| ticks(&dir))
            .sum(),
    )
}

/// CPU used so far by this whole process, ended threads included.
fn process_cpu() -> Duration {
    as_duration(ticks(Path::new("/proc/self")))
}

/// The PostgreSQL processes whose work a benchmark on `database` causes: the backends (and
/// autovacuum workers) of that database, whose process titles name it, and the cluster's
/// WAL writer, checkpointer and background writer, which every database's writes keep busy.
/// Backends of other databases are left out, so that tests or benchmarks running elsewhere in
/// the same cluster do not inflate the figure.
fn serves(title: &str, database: &str) -> bool {
    const SHARED: [&str; 3] = ["walwriter", "checkpointer", "background writer"];
    let title = title.trim_end_matches(['\0', ' ']);
    title.split_whitespace().any(|word| word == database)
        || SHARED.iter().any(|name| title.ends_with(name))
}

/// CPU used so far by the PostgreSQL processes on this host (the benchmarks' server runs here)
/// that serve `database` (see [`serves`]). Backends of connections that close during a phase
/// take their time with them; the benchmarks' pools keep theirs open.
fn postgres_cpu(database: &str) -> Duration {
    let Ok(processes) = std::fs::read_dir("/proc") else {
        return Duration::ZERO;
    };
    as_duration(
        processes
            .flatten()
            .filter(|p| {
                p.file_name()
                    .to_str()
                    .is_some_and(|n| n.parse::<u32>().is_ok())
            })
            .map(|p| p.path())
            .filter(|dir| {
                std::fs::read_to_string(dir.join("comm")).is_ok_and(|n| n.trim() == "postgres")
            })
            .filter(|dir| {
                std::fs::read(dir.join("cmdline"))
                    .is_ok_and(|title| serves(&String::from_utf8_lossy(&title), database))
            })
            .map(|dir| ticks(&dir))
            .sum(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_spent_sums_the_stretches_it_is_given_and_nothing_between() {
        let at = |server_ms: u64, busy: u64, idle: u64| CpuSample {
            server: Duration::from_millis(server_ms),
            process: Duration::from_millis(server_ms * 2),
            postgres: Duration::from_millis(server_ms * 3),
            machine: MachineTicks { busy, idle },
        };
        let mut spent = CpuSpent::default();
        spent.add(&at(0, 0, 0), &at(10, 30, 10));
        // Between the two stretches another phase ran: none of it may count.
        spent.add(&at(500, 900, 900), &at(510, 910, 950));
        let per = spent.per_command(20);
        assert!((per.server_us - 1_000.0).abs() < 1e-9);
        assert!((per.client_us - 1_000.0).abs() < 1e-9);
        assert!((per.postgres_us - 3_000.0).abs() < 1e-9);
        assert!((per.machine_busy - 0.4).abs() < 1e-9);
    }

    #[test]
    fn stat_ticks_counts_from_the_last_parenthesis() {
        let line = "42 (a (b) c) S 1 42 42 0 -1 4194304 10 0 0 0 250 31 0 0 20 0 1 0 9 0 0";
        assert_eq!(stat_ticks(line), Some(281));
    }

    #[test]
    fn machine_ticks_split_busy_from_idle() {
        let line = "cpu  100 5 20 300 10 1 2 3 0 0";
        let before = MachineTicks::parse(line).unwrap();
        assert_eq!((before.busy, before.idle), (131, 310));
        let later = MachineTicks::parse("cpu  200 5 20 400 10 1 2 3 0 0").unwrap();
        let between = MachineTicks {
            busy: later.busy - before.busy,
            idle: later.idle - before.idle,
        };
        assert!((between.busy_share() - 0.5).abs() < 1e-9);
        assert!(MachineTicks::parse("cpu0 1 2 3 4 5 6 7 8").is_none());
    }

    #[test]
    fn only_the_databases_backends_and_the_shared_writers_count() {
        let db = "plinth_bench_append_1a2b";
        assert!(serves(
            "postgres: 15/main: postgres plinth_bench_append_1a2b 127.0.0.1(4711) idle",
            db
        ));
        assert!(serves(
            "postgres: 15/main: autovacuum worker plinth_bench_append_1a2b",
            db
        ));
        assert!(serves("postgres: 15/main: walwriter \0\0", db));
        assert!(serves("postgres: 15/main: checkpointer ", db));
        assert!(!serves(
            "postgres: 15/main: postgres plinth_test_9f 127.0.0.1(4712) idle",
            db
        ));
        assert!(!serves(
            "postgres: 15/main: postgres plinth_bench_append_1a2b_x 127.0.0.1(1) idle",
            db
        ));
        assert!(!serves("postgres: 15/main: autovacuum launcher", db));
    }

    #[test]
    fn a_named_thread_is_seen_working() {
        if !cfg!(target_os = "linux") {
            return;
        }
        // Spins until its own reading shows 50 ms of CPU: a reading that never moves fails
        // after 20 s of wall time, however busy the machine is.
        std::thread::Builder::new()
            .name("cpu-test-spin".into())
            .spawn(|| {
                let started = std::time::Instant::now();
                while threads_cpu("cpu-test-spin") < Duration::from_millis(50) {
                    assert!(started.elapsed() < Duration::from_secs(20), "no CPU seen");
                }
                assert_eq!(threads_cpu("no-such-thread"), Duration::ZERO);
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
