//! Crash-safe state: SQLite in WAL mode under the state directory. Jobs, runs and queues are
//! written by the scheduler alone, from its own thread; accounts (`auth::users`) live in the same
//! file through a connection of their own. Neither runs on the async executor.
//!
//! Records are stored as JSON beside the columns that are queried, so adding a field to a job
//! needs no migration; changes of shape that do are numbered migrations in [`MIGRATIONS`],
//! applied in order and remembered in `PRAGMA user_version`.

use crate::model::{Job, JobId, QueueState, Run};
use rusqlite::{params, Connection, OptionalExtension};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Sqlite { path: PathBuf, source: rusqlite::Error },
    #[error("{path}: record {what}: {source}")]
    Corrupt { path: PathBuf, what: String, source: serde_json::Error },
    #[error("{path}: written by a newer gantry (schema version {found}, this one knows up to {known})")]
    TooNew { path: PathBuf, found: u32, known: u32 },
}

/// A queue's state, new or replacing what was there: alone, or within a job's transaction.
const SAVE_QUEUE: &str = "INSERT INTO queues (name, data) VALUES (?1, ?2) ON CONFLICT(name) DO UPDATE SET data = excluded.data";

/// Each entry moves the schema one version up. Never edit one that has shipped; add another.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE runs (id INTEGER PRIMARY KEY, data TEXT NOT NULL);
     CREATE TABLE jobs (
         id INTEGER PRIMARY KEY,
         state TEXT NOT NULL,
         queue TEXT NOT NULL,
         run_id INTEGER REFERENCES runs(id),
         data TEXT NOT NULL
     );
     CREATE INDEX jobs_by_state ON jobs(state);
     CREATE TABLE attempts (
         job_id INTEGER NOT NULL REFERENCES jobs(id),
         number INTEGER NOT NULL,
         data TEXT NOT NULL,
         PRIMARY KEY (job_id, number)
     );
     CREATE TABLE queues (name TEXT PRIMARY KEY, data TEXT NOT NULL);",
    // Accounts of `auth.mode = "users"`; tokens are kept only as SHA-256 digests.
    "CREATE TABLE users (
         id TEXT PRIMARY KEY,
         email TEXT NOT NULL UNIQUE COLLATE NOCASE,
         password_hash TEXT NOT NULL,
         role TEXT NOT NULL,
         data TEXT NOT NULL
     );
     CREATE TABLE tokens (
         digest TEXT PRIMARY KEY,
         user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
         kind TEXT NOT NULL,
         name TEXT NOT NULL,
         created_ms INTEGER NOT NULL,
         expires_ms INTEGER
     );",
    // Other people's GPU use over time (`replay::foreign`), for traces.
    "CREATE TABLE foreign_use (
         at_ms INTEGER NOT NULL,
         gpu INTEGER NOT NULL,
         memory_mib INTEGER NOT NULL,
         PRIMARY KEY (at_ms, gpu)
     ) WITHOUT ROWID;",
];

/// A connection with the settings every user of the database needs. Only [`Store::open`]
/// migrates; other connections (accounts) are opened after it.
pub fn connect(path: &Path) -> Result<Connection, StoreError> {
    let sql = |source| StoreError::Sqlite { path: path.to_path_buf(), source };
    let conn = Connection::open(path).map_err(sql)?;
    // WAL: readers never block the writer. NORMAL: a commit survives a crash of gantry (what
    // this must survive); only a power loss may take the last commits, never corrupt.
    conn.pragma_update(None, "journal_mode", "WAL").map_err(sql)?;
    conn.pragma_update(None, "synchronous", "NORMAL").map_err(sql)?;
    conn.pragma_update(None, "foreign_keys", true).map_err(sql)?;
    conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(sql)?;
    Ok(conn)
}

/// Everything the scheduler needs to carry on after a restart.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub jobs: Vec<Job>,
    pub runs: Vec<Run>,
    pub queues: Vec<QueueState>,
}

pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl Store {
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let mut store = Store { conn: connect(path)?, path: path.to_path_buf() };
        store.migrate()?;
        Ok(store)
    }

    fn sql(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        |source| StoreError::Sqlite { path: self.path.clone(), source }
    }

    pub fn schema_version(&self) -> Result<u32, StoreError> {
        self.conn.pragma_query_value(None, "user_version", |row| row.get(0)).map_err(self.sql())
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let found = self.schema_version()?;
        let known = MIGRATIONS.len() as u32;
        if found > known {
            return Err(StoreError::TooNew { path: self.path.clone(), found, known });
        }
        for (version, migration) in MIGRATIONS.iter().enumerate().skip(found as usize) {
            let path = self.path.clone();
            let sql = move |source| StoreError::Sqlite { path: path.clone(), source };
            let tx = self.conn.transaction().map_err(&sql)?;
            tx.execute_batch(migration).map_err(&sql)?;
            tx.pragma_update(None, "user_version", version as u32 + 1).map_err(&sql)?;
            tx.commit().map_err(&sql)?;
        }
        Ok(())
    }

    fn json<T: serde::Serialize>(&self, what: &str, value: &T) -> Result<String, StoreError> {
        serde_json::to_string(value).map_err(|source| StoreError::Corrupt { path: self.path.clone(), what: what.into(), source })
    }

    /// Writes jobs (new or changed), with their latest attempt and none after it, in one
    /// transaction: either all of a batch is committed or none.
    pub fn save_jobs<'a>(&mut self, jobs: impl IntoIterator<Item = &'a Job>) -> Result<(), StoreError> {
        self.save_jobs_and_queue(jobs, None)
    }

    /// [`Store::save_jobs`], and in the same transaction the state of the queue they changed
    /// (an attempt's end and its queue's failure count; an array and its own queue): one commit,
    /// and never the one without the other after a crash.
    pub fn save_jobs_and_queue<'a>(&mut self, jobs: impl IntoIterator<Item = &'a Job>, queue: Option<&QueueState>) -> Result<(), StoreError> {
        let queue = queue.map(|queue| self.queue_data(queue).map(|data| (queue, data))).transpose()?;
        let mut rows = Vec::new();
        for job in jobs {
            let attempt = match job.attempts.last() {
                Some(a) => Some((a.number, self.json(&format!("attempt {}/{}", job.id, a.number), a)?)),
                None => None,
            };
            let mut bare = job.clone();
            bare.attempts.clear();
            rows.push((job.id.0, job.state.as_str(), job.queue.clone(), job.run.map(|r| r.0), self.json(&format!("job {}", job.id), &bare)?, attempt));
        }
        let path = self.path.clone();
        let sql = move |source| StoreError::Sqlite { path: path.clone(), source };
        let tx = self.conn.transaction().map_err(&sql)?;
        {
            let mut job_stmt = tx
                .prepare_cached(
                    "INSERT INTO jobs (id, state, queue, run_id, data) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT(id) DO UPDATE SET state = excluded.state, data = excluded.data",
                )
                .map_err(&sql)?;
            let mut attempt_stmt = tx
                .prepare_cached(
                    "INSERT INTO attempts (job_id, number, data) VALUES (?1, ?2, ?3)
                     ON CONFLICT(job_id, number) DO UPDATE SET data = excluded.data",
                )
                .map_err(&sql)?;
            // An attempt that never began is taken back from the job; its row must go too, or
            // the next load finds it again as an attempt that never ended.
            let mut forget_stmt = tx.prepare_cached("DELETE FROM attempts WHERE job_id = ?1 AND number > ?2").map_err(&sql)?;
            for (id, state, queue, run, data, attempt) in &rows {
                job_stmt.execute(params![id, state, queue, run, data]).map_err(&sql)?;
                if let Some((number, data)) = attempt {
                    attempt_stmt.execute(params![id, number, data]).map_err(&sql)?;
                }
                forget_stmt.execute(params![id, attempt.as_ref().map_or(0, |(number, _)| *number)]).map_err(&sql)?;
            }
            if let Some((queue, data)) = &queue {
                tx.prepare_cached(SAVE_QUEUE).map_err(&sql)?.execute(params![queue.name, data]).map_err(&sql)?;
            }
        }
        tx.commit().map_err(&sql)
    }

    pub fn save_run(&mut self, run: &Run) -> Result<(), StoreError> {
        let data = self.json(&format!("run {}", run.id), run)?;
        self.conn
            .execute("INSERT INTO runs (id, data) VALUES (?1, ?2) ON CONFLICT(id) DO UPDATE SET data = excluded.data", params![run.id.0, data])
            .map_err(self.sql())?;
        Ok(())
    }

    /// A queue's state as its row holds it.
    fn queue_data(&self, queue: &QueueState) -> Result<String, StoreError> {
        self.json(&format!("queue {}", queue.name), queue)
    }

    pub fn save_queue(&mut self, queue: &QueueState) -> Result<(), StoreError> {
        let data = self.queue_data(queue)?;
        self.conn.execute(SAVE_QUEUE, params![queue.name, data]).map_err(self.sql())?;
        Ok(())
    }

    fn parse<T: serde::de::DeserializeOwned>(&self, what: String, text: &str) -> Result<T, StoreError> {
        serde_json::from_str(text).map_err(|source| StoreError::Corrupt { path: self.path.clone(), what, source })
    }

    /// Every record, jobs in id order with their attempts in order.
    pub fn load(&self) -> Result<Snapshot, StoreError> {
        let sql = self.sql();
        let mut snapshot = Snapshot::default();
        let mut stmt = self.conn.prepare("SELECT id, data FROM jobs ORDER BY id").map_err(&sql)?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, u64>(0)?, r.get::<_, String>(1)?))).map_err(&sql)?;
        for row in rows {
            let (id, data) = row.map_err(&sql)?;
            snapshot.jobs.push(self.parse(format!("job {id}"), &data)?);
        }
        let mut stmt = self.conn.prepare("SELECT job_id, number, data FROM attempts ORDER BY job_id, number").map_err(&sql)?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, u64>(0)?, r.get::<_, u32>(1)?, r.get::<_, String>(2)?))).map_err(&sql)?;
        let mut jobs = snapshot.jobs.iter_mut().peekable();
        for row in rows {
            let (job_id, number, data) = row.map_err(&sql)?;
            while jobs.peek().is_some_and(|j| j.id < JobId(job_id)) {
                jobs.next();
            }
            if let Some(job) = jobs.peek_mut().filter(|j| j.id == JobId(job_id)) {
                job.attempts.push(self.parse(format!("attempt {job_id}/{number}"), &data)?);
            }
        }
        let mut stmt = self.conn.prepare("SELECT id, data FROM runs ORDER BY id").map_err(&sql)?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, u64>(0)?, r.get::<_, String>(1)?))).map_err(&sql)?;
        for row in rows {
            let (id, data) = row.map_err(&sql)?;
            snapshot.runs.push(self.parse(format!("run {id}"), &data)?);
        }
        let mut stmt = self.conn.prepare("SELECT name, data FROM queues").map_err(&sql)?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))).map_err(&sql)?;
        for row in rows {
            let (name, data) = row.map_err(&sql)?;
            snapshot.queues.push(self.parse(format!("queue {name}"), &data)?);
        }
        Ok(snapshot)
    }

    /// Largest job id ever used, so ids are never reused even after jobs are deleted.
    pub fn max_job_id(&self) -> Result<u64, StoreError> {
        self.conn.query_row("SELECT MAX(id) FROM jobs", [], |r| r.get::<_, Option<u64>>(0)).optional().map(|v| v.flatten().unwrap_or(0)).map_err(self.sql())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Attempt, JobSpec, JobState};

    fn job(id: u64) -> Job {
        Job {
            id: JobId(id),
            spec: JobSpec { commands: vec![format!("echo {id}")], ..JobSpec::default() },
            queue: format!("job{id}"),
            run: None,
            state: JobState::Waiting,
            memory_mib: 100,
            submitted_ms: 1,
            attempts: vec![],
            reason: None,
            after: vec![],
            run_as: None,
            groups: vec![],
            redacted: false,
            usage: None,
            array: None,
            unanswered: None,
        }
    }

    #[test]
    fn jobs_and_attempts_survive_reopening() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("gantry.db");
        let mut store = Store::open(&path).expect("open");
        let mut second = job(2);
        second.state = JobState::Running;
        for number in 1..=2 {
            second.attempts.push(Attempt::new(number, vec![1], 100, format!("/x/{number}").into(), 5));
            store.save_jobs([&job(1), &second]).expect("save");
        }
        drop(store);
        let store = Store::open(&path).expect("reopen");
        assert_eq!(store.schema_version().expect("version"), MIGRATIONS.len() as u32);
        let snapshot = store.load().expect("load");
        assert_eq!(snapshot.jobs, vec![job(1), second]);
        assert_eq!(store.max_job_id().expect("max"), 2);
    }

    #[test]
    fn a_job_and_its_queue_are_committed_together() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("gantry.db");
        let mut store = Store::open(&path).expect("open");
        let mut queue = QueueState::new("train");
        queue.consecutive_failures = 2;
        store.save_jobs_and_queue([&job(1)], Some(&queue)).expect("save");
        queue.consecutive_failures = 3;
        store.save_jobs_and_queue([&job(1)], Some(&queue)).expect("save again");
        drop(store);
        let snapshot = Store::open(&path).expect("reopen").load().expect("load");
        assert_eq!(snapshot.jobs, vec![job(1)]);
        assert_eq!(snapshot.queues.iter().map(|q| (q.name.as_str(), q.consecutive_failures)).collect::<Vec<_>>(), [("train", 3)]);
    }

    /// An attempt a provider could not be asked for is taken back; a restart must not find it.
    #[test]
    fn an_attempt_taken_back_is_gone_after_reopening() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("gantry.db");
        let mut store = Store::open(&path).expect("open");
        let mut taken_back = job(1);
        taken_back.state = JobState::Running;
        taken_back.attempts.push(Attempt::new(1, vec![], 100, "/x/1".into(), 5));
        store.save_jobs([&taken_back]).expect("save");
        taken_back.attempts.pop();
        taken_back.state = JobState::Waiting;
        store.save_jobs([&taken_back]).expect("save");
        drop(store);
        let snapshot = Store::open(&path).expect("reopen").load().expect("load");
        assert_eq!(snapshot.jobs, vec![taken_back]);
    }

    /// `tests/data/gantry-v1.db` was written by the first daemon (commit e4447c9, schema 1): two
    /// jobs of one queue (one succeeded, one failed after a retry), a held job, a finished run of
    /// two jobs from `command_gpu.txt`, and a job still running when the daemon was stopped.
    #[test]
    fn a_database_of_the_first_release_is_migrated_and_reads_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("gantry.db");
        std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/gantry-v1.db"), &path).expect("fixture");
        let store = Store::open(&path).expect("opens and migrates");
        assert_eq!(store.schema_version().expect("version"), MIGRATIONS.len() as u32);
        let snapshot = store.load().expect("every record reads with today's types");
        let states: Vec<(u64, JobState)> = snapshot.jobs.iter().map(|j| (j.id.0, j.state)).collect();
        assert_eq!(
            states,
            [(1, JobState::Succeeded), (2, JobState::Failed), (3, JobState::Held), (4, JobState::Succeeded), (5, JobState::Succeeded), (6, JobState::Running)]
        );
        let failed = &snapshot.jobs[1];
        assert_eq!((failed.attempts.len(), failed.attempts[1].exit_code), (2, Some(3)));
        assert_eq!(snapshot.jobs[3].run, Some(crate::model::RunId(1)));
        assert_eq!(snapshot.runs.len(), 1);
        assert_eq!(snapshot.runs[0].state, crate::model::RunState::Finished);
        let train = snapshot.queues.iter().find(|q| q.name == "train").expect("queue state kept");
        assert_eq!((train.consecutive_failures, train.last_error.as_deref()), (2, Some("job 2: exited with code 3")));
        assert_eq!(store.max_job_id().expect("max"), 6);
        drop(store);
        // The accounts of the second migration work on it.
        let users = crate::auth::UserStore::open(&path).expect("accounts open");
        let new = serde_json::from_value(serde_json::json!({ "email": "a@x.org", "password": "correct horse" })).expect("new user");
        assert_eq!(users.create(new, false).expect("first account").role, crate::model::Role::User, "registration never makes an admin");
    }

    #[test]
    fn a_newer_schema_is_refused_by_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("gantry.db");
        Connection::open(&path).and_then(|c| c.pragma_update(None, "user_version", 99)).expect("set version");
        let err = Store::open(&path).err().expect("refused");
        assert!(err.to_string().contains("schema version 99"), "{err}");
    }
}
