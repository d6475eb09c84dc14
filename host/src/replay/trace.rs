//! The trace format, version 2 (docs/TRACES.md): JSON lines, a header naming the machine, then
//! one line per job in the order they were submitted and, in the same order of time, a line
//! whenever other people's use of a GPU changed. Version 1, which has no such lines, still reads.

use crate::gpu::SimSpec;
use crate::model::{Batch, GpuCount, JobSpec};
use crate::scheduler::{ForeignChange, ReplayJob, Workload};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The version written; every version from 1 up to it reads.
pub const VERSION: u32 = 2;

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

/// A line saying that, from `at_s` on, processes gantry did not start hold `memory_mib` of GPU
/// `gpu` (until the next such line for that GPU).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForeignLine {
    pub at_s: f64,
    pub foreign: ForeignUse,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForeignUse {
    pub gpu: u32,
    pub memory_mib: u64,
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
    /// Other people's GPU use over time, in the order of time.
    pub foreign: Vec<ForeignLine>,
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
        if !(1..=VERSION).contains(&header.gantry_trace) {
            return Err(at(first, format!("gantry_trace {} is not a version this gantry reads (it reads 1 to {VERSION})", header.gantry_trace)));
        }
        let machine: SimSpec = header.machine.parse().map_err(|e: crate::gpu::GpuError| at(first, format!("machine: {e}")))?;
        let (mut jobs, mut foreign) = (Vec::new(), Vec::new());
        let mut last_at = 0.0;
        for (line, text) in lines {
            let fields: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text).map_err(|e| at(line, e.to_string()))?;
            let at_s = if fields.contains_key("foreign") {
                if header.gantry_trace < 2 {
                    return Err(at(line, "foreign: other people's GPU use is a line of version 2; say \"gantry_trace\": 2 in the header".into()));
                }
                let use_: ForeignLine = serde_json::from_value(fields.into()).map_err(|e| at(line, e.to_string()))?;
                use_.check(&machine).map_err(|message| at(line, message))?;
                let at_s = use_.at_s;
                foreign.push(use_);
                at_s
            } else {
                let job: TraceJob = serde_json::from_value(fields.into()).map_err(|e| at(line, e.to_string()))?;
                seconds("duration_s", job.duration_s).map_err(|message| at(line, message))?;
                // Checked as a submission is, and named by the trace's own field.
                Batch::new(vec![job.spec()]).map_err(|e| at(line, format!("{}: {}", e.field.trim_start_matches("jobs[0]."), e.message)))?;
                let at_s = job.at_s;
                jobs.push(job);
                at_s
            };
            seconds("at_s", at_s).map_err(|message| at(line, message))?;
            if at_s < last_at {
                return Err(at(line, format!("at_s: {at_s} is before the line above's {last_at}; a trace is in the order of time")));
            }
            last_at = at_s;
        }
        Ok(Trace { header, machine, jobs, foreign })
    }

    /// The trace as it is written: the header, then the jobs and other people's use in the order
    /// of time (a change of use before a job submitted at the same instant).
    pub fn to_lines(&self) -> String {
        let mut lines: Vec<(f64, bool, serde_json::Result<String>)> = Vec::with_capacity(self.jobs.len() + self.foreign.len());
        lines.extend(self.foreign.iter().map(|f| (f.at_s, false, serde_json::to_string(f))));
        lines.extend(self.jobs.iter().map(|j| (j.at_s, true, serde_json::to_string(j))));
        // Stable: each kind keeps its own order.
        lines.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let mut out = String::new();
        for line in std::iter::once(serde_json::to_string(&self.header)).chain(lines.into_iter().map(|(.., line)| line)) {
            out.push_str(&line.unwrap_or_default());
            out.push('\n');
        }
        out
    }

    /// The workload as the replay runs it, on a clock that starts at `start_ms`.
    pub fn workload(&self, start_ms: u64) -> Workload {
        let jobs = self
            .jobs
            .iter()
            .map(|job| ReplayJob {
                at_ms: start_ms + millis(job.at_s),
                spec: job.spec(),
                duration_ms: millis(job.duration_s),
                exit_code: job.exit_code,
                peak_mib: job.peak_mib,
            })
            .collect();
        let foreign = self.foreign.iter().map(|f| ForeignChange { at_ms: start_ms + millis(f.at_s), gpu: f.foreign.gpu, memory_mib: f.foreign.memory_mib }).collect();
        Workload { jobs, foreign }
    }
}

impl ForeignLine {
    fn check(&self, machine: &SimSpec) -> Result<(), String> {
        if self.foreign.gpu >= machine.count {
            return Err(format!("foreign.gpu: {} is not a GPU of {machine} (0 to {})", self.foreign.gpu, machine.count - 1));
        }
        if self.foreign.memory_mib > machine.model.memory_mib {
            return Err(format!("foreign.memory_mib: {} MiB is more than a GPU of {machine} holds ({} MiB)", self.foreign.memory_mib, machine.model.memory_mib));
        }
        Ok(())
    }
}

/// A time or duration a trace may hold.
fn seconds(field: &str, value: f64) -> Result<(), String> {
    if value.is_finite() && (0.0..=MAX_SECONDS).contains(&value) { Ok(()) } else { Err(format!("{field}: must be 0 to {MAX_SECONDS} seconds, got {value}")) }
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
    const V2: &str = r#"{"gantry_trace": 2, "machine": "2xA100"}"#;

    #[test]
    fn a_trace_reads_and_writes_back_the_same() {
        let text = format!("{HEADER}\n{{\"at_s\": 0, \"duration_s\": 60, \"memory_mib\": 1000, \"owner\": \"ada\"}}\n\n{{\"at_s\": 1.5, \"duration_s\": 2, \"gpus\": 2, \"exit_code\": 3}}\n");
        let trace = Trace::parse("t.jsonl", &text).expect("valid");
        assert_eq!((trace.machine.count, trace.jobs.len(), trace.jobs[1].gpus), (2, 2, 2));
        let again = Trace::parse("again", &trace.to_lines()).expect("its own output reads");
        assert_eq!(again.jobs, trace.jobs);
        let workload = trace.workload(1000).jobs;
        assert_eq!((workload[1].at_ms, workload[1].duration_ms, workload[1].exit_code), (2500, 2000, 3));
    }

    #[test]
    fn other_peoples_use_is_read_in_its_place_in_time_and_written_back_there() {
        let text = "{\"gantry_trace\": 2, \"machine\": \"2xA100\"}\n{\"at_s\": 0, \"foreign\": {\"gpu\": 1, \"memory_mib\": 70000}}\n{\"at_s\": 0, \"duration_s\": 60}\n{\"at_s\": 30, \"foreign\": {\"gpu\": 1, \"memory_mib\": 0}}\n{\"at_s\": 45, \"duration_s\": 1}\n";
        let trace = Trace::parse("t.jsonl", text).expect("valid");
        assert_eq!((trace.jobs.len(), trace.foreign.len()), (2, 2));
        let kinds = |text: &str| text.lines().map(|l| if l.contains("foreign") { 'f' } else { 'j' }).collect::<String>();
        assert_eq!(kinds(&trace.to_lines()), "jfjfj", "{}", trace.to_lines());
        let again = Trace::parse("again", &trace.to_lines()).expect("its own output reads");
        assert_eq!((again.jobs, again.foreign), (trace.jobs.clone(), trace.foreign.clone()));
        let workload = trace.workload(1000);
        assert_eq!(workload.foreign, vec![ForeignChange { at_ms: 1000, gpu: 1, memory_mib: 70000 }, ForeignChange { at_ms: 31000, gpu: 1, memory_mib: 0 }]);
    }

    #[test]
    fn bad_lines_are_named_with_their_field() {
        let cases = [
            ("", "t:1: empty"),
            (r#"{"gantry_trace": 3, "machine": "1"}"#, "t:1: gantry_trace 3"),
            (&format!("{HEADER}\n{{\"at_s\": 0, \"foreign\": {{\"gpu\": 0, \"memory_mib\": 1}}}}"), "t:2: foreign: other people's GPU use is a line of version 2"),
            (&format!("{V2}\n{{\"at_s\": 0, \"foreign\": {{\"gpu\": 2, \"memory_mib\": 1}}}}"), "t:2: foreign.gpu: 2 is not a GPU of 2xA100 (0 to 1)"),
            (&format!("{V2}\n{{\"at_s\": 0, \"foreign\": {{\"gpu\": 0, \"memory_mib\": 90000}}}}"), "t:2: foreign.memory_mib: 90000 MiB is more than"),
            (&format!("{V2}\n{{\"at_s\": 0, \"foreign\": {{\"gpu\": 0}}}}"), "t:2: missing field `memory_mib`"),
            (&format!("{V2}\n{{\"at_s\": 5, \"duration_s\": 1}}\n{{\"at_s\": 4, \"foreign\": {{\"gpu\": 0, \"memory_mib\": 1}}}}"), "t:3: at_s: 4 is before"),
            (&format!("{V2}\n[1]"), "t:2: invalid type"),
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
