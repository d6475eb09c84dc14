//! Other people's GPU use over time, as the daemon records it for `gantry trace export`: per GPU,
//! the peak memory that processes gantry did not start held in each sampling window (the peak
//! placement judges them by), written down only when it moved by a step worth replaying, into a
//! table of the store that this module alone writes, through a connection of its own.

use crate::gpu::{GpuMonitor, UsageSample};
use crate::scheduler::ForeignChange;
use crate::store::StoreError;
use rusqlite::{params, Connection};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Smaller moves are a training loop's breathing, not a change any placement would make
/// differently; each row costs the store about 40 bytes.
const STEP_MIB: u64 = 256;
/// How long rows are kept: longer than any `--since` a replay of last week's work asks for.
const KEEP: Duration = Duration::from_secs(31 * 86_400);
/// A bound whatever the GPUs do: a row per GPU per window, on 8 GPUs with a 10 s window, is
/// 70,000 rows a day.
const MAX_ROWS: u64 = 500_000;
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

pub struct ForeignLog {
    conn: Connection,
    path: PathBuf,
}

impl ForeignLog {
    /// The table is the store's (its migrations make it): open the [`crate::store::Store`] first.
    pub fn open(db: &Path) -> Result<ForeignLog, StoreError> {
        Ok(ForeignLog { conn: crate::store::connect(db)?, path: db.to_path_buf() })
    }

    fn sql(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        |source| StoreError::Sqlite { path: self.path.clone(), source }
    }

    pub fn write(&mut self, rows: &[ForeignChange]) -> Result<(), StoreError> {
        let path = self.path.clone();
        let sql = move |source| StoreError::Sqlite { path: path.clone(), source };
        let tx = self.conn.transaction().map_err(&sql)?;
        for row in rows {
            tx.execute("INSERT OR REPLACE INTO foreign_use (at_ms, gpu, memory_mib) VALUES (?1, ?2, ?3)", params![row.at_ms as i64, row.gpu, row.memory_mib as i64])
                .map_err(&sql)?;
        }
        tx.commit().map_err(&sql)
    }

    /// Drops rows from before `before_ms`, and the oldest past `max_rows`, but never a GPU's
    /// latest: it says what holds on it still. Returns how many went.
    pub fn prune(&mut self, before_ms: u64, max_rows: u64) -> Result<usize, StoreError> {
        self.conn
            .execute(
                "DELETE FROM foreign_use
                 WHERE (at_ms < ?1 OR at_ms < (SELECT at_ms FROM foreign_use ORDER BY at_ms DESC LIMIT 1 OFFSET ?2))
                   AND (at_ms, gpu) NOT IN (SELECT MAX(at_ms), gpu FROM foreign_use GROUP BY gpu)",
                params![before_ms as i64, max_rows.saturating_sub(1) as i64],
            )
            .map_err(self.sql())
    }

    /// The rows from `since_ms` on, each GPU's last before it first (what held at `since_ms`),
    /// in the order of time.
    pub fn read(&self, since_ms: u64) -> Result<Vec<ForeignChange>, StoreError> {
        let mut statement = self
            .conn
            .prepare(
                "SELECT MAX(at_ms), gpu, memory_mib FROM foreign_use WHERE at_ms < ?1 GROUP BY gpu
                 UNION ALL
                 SELECT at_ms, gpu, memory_mib FROM foreign_use WHERE at_ms >= ?1
                 ORDER BY 1, 2",
            )
            .map_err(self.sql())?;
        let rows = statement
            .query_map(params![since_ms as i64], |row| {
                Ok(ForeignChange { at_ms: row.get::<_, i64>(0)?.max(0) as u64, gpu: row.get(1)?, memory_mib: row.get::<_, i64>(2)?.max(0) as u64 })
            })
            .map_err(self.sql())?;
        rows.collect::<Result<Vec<_>, _>>().map_err(self.sql())
    }
}

/// What was last written per GPU: the level the next window's peak is compared with.
#[derive(Debug, Default)]
pub struct Changes {
    last: HashMap<u32, u64>,
}

impl Changes {
    /// The rows one more window of samples makes, per GPU: its foreign peak, where that moved by
    /// [`STEP_MIB`] or to or from nothing (and on the first window, whatever it is), timed at
    /// the first sample that showed the move. A GPU with no samples (lost) makes none.
    pub fn next(&mut self, windows: &[(u32, Vec<UsageSample>)]) -> Vec<ForeignChange> {
        let mut rows = Vec::new();
        for (gpu, samples) in windows {
            let Some(peak) = samples.iter().map(|s| s.memory_foreign_mib).max() else { continue };
            let moved = |from: u64, to: u64| from.abs_diff(to) >= STEP_MIB || (from == 0) != (to == 0);
            let at_ms = match self.last.get(gpu) {
                Some(&last) if !moved(last, peak) => continue,
                Some(&last) if peak > last => samples.iter().find(|s| moved(last, s.memory_foreign_mib)).map(|s| s.at_ms),
                _ => samples.first().map(|s| s.at_ms),
            };
            let Some(at_ms) = at_ms else { continue };
            self.last.insert(*gpu, peak);
            rows.push(ForeignChange { at_ms, gpu: *gpu, memory_mib: peak });
        }
        rows
    }
}

/// The daemon's recorder: a thread of its own (SQLite blocks), which looks at the sampler's
/// history once per window and stops when dropped. Started once the sampler knows gantry's own
/// jobs, it reads only samples taken after that: earlier ones count every process as foreign.
pub struct Recorder {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Recorder {
    pub fn start(gpus: Arc<GpuMonitor>, mut log: ForeignLog) -> std::io::Result<Recorder> {
        let window = gpus.config().window.max(Duration::from_secs(1));
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("gantry-foreign-use".into())
            .spawn(move || {
                let (mut changes, mut seen_ms, mut failing) = (Changes::default(), gpus.sampled_at_ms(), false);
                let mut pruned: Option<Instant> = None;
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(window) {
                    let windows: Vec<(u32, Vec<UsageSample>)> =
                        gpus.latest().gpus.iter().map(|reading| (reading.index(), gpus.history(reading.index(), seen_ms + 1))).collect();
                    seen_ms = windows.iter().flat_map(|(_, samples)| samples.iter().map(|s| s.at_ms)).max().unwrap_or(seen_ms);
                    let rows = changes.next(&windows);
                    let mut done = if rows.is_empty() { Ok(()) } else { log.write(&rows) };
                    if done.is_ok() && pruned.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
                        pruned = Some(Instant::now());
                        let before = crate::model::now_ms().saturating_sub(KEEP.as_millis() as u64);
                        done = log.prune(before, MAX_ROWS).map(drop);
                    }
                    match done {
                        Err(e) if !failing => {
                            failing = true;
                            tracing::warn!(error = %e, "other people's GPU use can't be recorded for gantry trace export");
                        }
                        Ok(()) => failing = false,
                        Err(_) => {}
                    }
                }
            })?;
        Ok(Recorder { stop: Some(stop), thread: Some(thread) })
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at_ms: u64, memory_foreign_mib: u64) -> UsageSample {
        UsageSample { at_ms, memory_used_mib: memory_foreign_mib, memory_foreign_mib, utilization_gpu: None }
    }

    #[test]
    fn a_window_makes_a_row_when_the_peak_moves_by_a_step() {
        let mut changes = Changes::default();
        let first = changes.next(&[(0, vec![sample(1000, 0), sample(1100, 0)]), (1, vec![sample(1000, 5000)]), (2, vec![])]);
        assert_eq!(first, vec![ForeignChange { at_ms: 1000, gpu: 0, memory_mib: 0 }, ForeignChange { at_ms: 1000, gpu: 1, memory_mib: 5000 }]);
        // GPU 0 starts being used at 2100 and peaks at 2200; GPU 1 breathes by 100 MiB.
        let second = changes.next(&[(0, vec![sample(2000, 0), sample(2100, 9000), sample(2200, 12000)]), (1, vec![sample(2000, 5100)])]);
        assert_eq!(second, vec![ForeignChange { at_ms: 2100, gpu: 0, memory_mib: 12000 }]);
        // A fall is seen when a whole window is below: at its start.
        assert_eq!(changes.next(&[(0, vec![sample(3000, 12000), sample(3100, 100)])]), vec![]);
        assert_eq!(changes.next(&[(0, vec![sample(4000, 100), sample(4100, 0)])]), vec![ForeignChange { at_ms: 4000, gpu: 0, memory_mib: 100 }]);
        // To nothing counts, however small the step.
        assert_eq!(changes.next(&[(0, vec![sample(5000, 0)])]), vec![ForeignChange { at_ms: 5000, gpu: 0, memory_mib: 0 }]);
    }

    #[test]
    fn the_log_keeps_each_gpus_latest_and_reads_what_held_at_the_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("gantry.db");
        crate::store::Store::open(&db).expect("store");
        let mut log = ForeignLog::open(&db).expect("log");
        let row = |at_ms, gpu, memory_mib| ForeignChange { at_ms, gpu, memory_mib };
        log.write(&[row(100, 0, 4000), row(100, 1, 0), row(200, 0, 8000), row(300, 0, 0), row(400, 1, 600)]).expect("write");
        assert_eq!(log.read(250).expect("read"), vec![row(100, 1, 0), row(200, 0, 8000), row(300, 0, 0), row(400, 1, 600)]);
        // Everything before 350 is old, but GPU 0's latest (300) stays.
        assert_eq!(log.prune(350, 100).expect("prune"), 3);
        assert_eq!(log.read(0).expect("read"), vec![row(300, 0, 0), row(400, 1, 600)]);
        log.write(&[row(500, 1, 0), row(600, 1, 900)]).expect("write");
        // At most two rows: the oldest go, but not GPU 0's only one.
        assert_eq!(log.prune(0, 2).expect("prune"), 1);
        assert_eq!(log.read(0).expect("read"), vec![row(300, 0, 0), row(500, 1, 0), row(600, 1, 900)]);
    }
}
