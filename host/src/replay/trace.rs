//! The trace format, version 1 (docs/TRACES.md): JSON lines, a header naming the machine, then
//! one job per line in the order they were submitted.

use crate::gpu::SimSpec;
use crate::model::{Batch, GpuCount, JobSpec};
use crate::scheduler::ReplayJob;
use serde::{Deserialize, Serialize};
use std::path::Path;

pub const VERSION: u32 = 1;

/// A trace is read whole; past this it is refused rather than let grow without bound.
pub const MAX_BYTES: u64 = 256 << 20;

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("{path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}: {size} bytes, more than the {MAX_BYTES} a trace may have")]
    TooBig { path: String, size: u64 },
    #[error("{path}:{line}: {message}")]
    Line { path: String, line: usize, message: String },
}

/// The first line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    pub gantry_trace: u32,
    /// The GPUs, as `--simulate` takes them: `N` or `NxMODEL` (e.g. `8xH100`).
    pub machine: String,
    /// Where the trace came from, for whoever reads it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// Every later line: one job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceJob {
    /// Seconds from the trace's start to the job's submission; never less than the line before.
    pub at_s: f64,
    /// Seconds each of its attempts runs.
    pub duration_s: f64,
    #[serde(default = "one")]
    pub gpus: u32,
    /// Memory it asks for on each GPU (0: a whole GPU's worth is not asked, any free GPU does).
    #[serde(default)]
    pub memory_mib: u64,
    /// The GPU memory it was seen to use at its peak, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_mib: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub priority: i32,
    /// How each attempt ends; a failure is retried as the rules say.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub exit_code: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
}

fn one() -> u32 {
    1
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

/// A trace ready to replay.
#[derive(Clone, Debug)]
pub struct Trace {
    pub header: Header,
    pub machine: SimSpec,
    pub jobs: Vec<TraceJob>,
}

impl Trace {
    pub fn read(path: &Path) -> Result<Trace, TraceError> {
        let name = path.display().to_string();
        let read = |source| TraceError::Read { path: name.clone(), source };
        let size = std::fs::metadata(path).map_err(read)?.len();
        if size > MAX_BYTES {
            return Err(TraceError::TooBig { path: name, size });
        }
        let text = std::fs::read_to_string(path).map_err(read)?;
        Trace::parse(&name, &text)
    }

    /// `name` is what errors call the text (its file).
    pub fn parse(name: &str, text: &str) -> Result<Trace, TraceError> {
        let at = |line: usize, message: String| TraceError::Line { path: name.to_string(), line, message };
        let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l)).filter(|(_, l)| !l.trim().is_empty());
        let Some((first, header)) = lines.next() else { return Err(at(1, "empty: a trace starts with its header line".into())) };
        let header: Header = serde_json::from_str(header).map_err(|e| at(first, format!("the header: {e}")))?;
        if header.gantry_trace != VERSION {
            return Err(at(first, format!("gantry_trace {} is not a version this gantry reads (it reads {VERSION})", header.gantry_trace)));
        }
        let machine: SimSpec = header.machine.parse().map_err(|e: crate::gpu::GpuError| at(first, format!("machine: {e}")))?;
        let mut jobs = Vec::new();
        let mut last_at = 0.0;
        for (line, text) in lines {
            let job: TraceJob = serde_json::from_str(text).map_err(|e| at(line, e.to_string()))?;
            for (field, value) in [("at_s", job.at_s), ("duration_s", job.duration_s)] {
                if !value.is_finite() || !(0.0..=MAX_SECONDS).contains(&value) {
                    return Err(at(line, format!("{field}: must be 0 to {MAX_SECONDS} seconds, got {value}")));
                }
            }
            if job.at_s < last_at {
                return Err(at(line, format!("at_s: {} is before the line above's {last_at}; a trace is in submission order", job.at_s)));
            }
            last_at = job.at_s;
            // Checked as a submission is, and named by the trace's own field.
            Batch::new(vec![job.spec()]).map_err(|e| at(line, format!("{}: {}", e.field.trim_start_matches("jobs[0]."), e.message)))?;
            jobs.push(job);
        }
        Ok(Trace { header, machine, jobs })
    }

    /// The trace as it is written: the header, then a line per job.
    pub fn to_lines(&self) -> String {
        let mut out = String::new();
        for line in std::iter::once(serde_json::to_string(&self.header)).chain(self.jobs.iter().map(serde_json::to_string)) {
            out.push_str(&line.unwrap_or_default());
            out.push('\n');
        }
        out
    }

    /// The jobs as the replay submits them, on a clock that starts at `start_ms`.
    pub fn workload(&self, start_ms: u64) -> Vec<ReplayJob> {
        self.jobs
            .iter()
            .map(|job| ReplayJob {
                at_ms: start_ms + millis(job.at_s),
                spec: job.spec(),
                duration_ms: millis(job.duration_s),
                exit_code: job.exit_code,
                peak_mib: job.peak_mib,
            })
            .collect()
    }
}

/// A year: no trace's offsets or durations need more, and milliseconds of it fit any clock.
const MAX_SECONDS: f64 = 366.0 * 86_400.0;

fn millis(seconds: f64) -> u64 {
    (seconds * 1000.0).round() as u64
}

impl TraceJob {
    /// The job a daemon would have been given. Its command never runs.
    fn spec(&self) -> JobSpec {
        JobSpec {
            commands: vec!["true".into()],
            queue: self.queue.clone(),
            gpus: Some(GpuCount { min: self.gpus, max: self.gpus }),
            memory_mib: self.memory_mib,
            priority: self.priority,
            retries: self.retries,
            owner: self.owner.clone(),
            ..JobSpec::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = r#"{"gantry_trace": 1, "machine": "2xA100"}"#;

    #[test]
    fn a_trace_reads_and_writes_back_the_same() {
        let text = format!("{HEADER}\n{{\"at_s\": 0, \"duration_s\": 60, \"memory_mib\": 1000, \"owner\": \"ada\"}}\n\n{{\"at_s\": 1.5, \"duration_s\": 2, \"gpus\": 2, \"exit_code\": 3}}\n");
        let trace = Trace::parse("t.jsonl", &text).expect("valid");
        assert_eq!((trace.machine.count, trace.jobs.len(), trace.jobs[1].gpus), (2, 2, 2));
        let again = Trace::parse("again", &trace.to_lines()).expect("its own output reads");
        assert_eq!(again.jobs, trace.jobs);
        let workload = trace.workload(1000);
        assert_eq!((workload[1].at_ms, workload[1].duration_ms, workload[1].exit_code), (2500, 2000, 3));
    }

    #[test]
    fn bad_lines_are_named_with_their_field() {
        let cases = [
            ("", "t:1: empty"),
            (r#"{"gantry_trace": 2, "machine": "1"}"#, "t:1: gantry_trace 2"),
            (r#"{"gantry_trace": 1, "machine": "2xB9000"}"#, "t:1: machine: "),
            (&format!("{HEADER}\n{{\"at_s\": 5, \"duration_s\": 1}}\n{{\"at_s\": 4, \"duration_s\": 1}}"), "t:3: at_s: 4 is before"),
            (&format!("{HEADER}\n{{\"at_s\": 0, \"duration_s\": -1}}"), "t:2: duration_s: must be"),
            (&format!("{HEADER}\n{{\"at_s\": 0, \"duration_s\": 1, \"gpu\": 1}}"), "t:2: unknown field `gpu`"),
            (&format!("{HEADER}\n{{\"at_s\": 0, \"duration_s\": 1, \"gpus\": 0}}"), "t:2: gpus"),
        ];
        for (text, wanted) in cases {
            let error = Trace::parse("t", text).expect_err(wanted).to_string();
            assert!(error.starts_with(wanted), "{error:?} should start with {wanted:?}");
        }
    }
}
