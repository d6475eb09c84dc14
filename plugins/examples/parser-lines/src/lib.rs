//! A gantry command-file format: one job per line, `QUEUE GPUS MEMORY_GB COMMAND…`, as in
//! `0 2 16 torchrun train.py --lr 3e-4`. Blank lines and lines starting with `#` are skipped.
//! Jobs with the same queue run one after another.

use gantry_plugin::parser::{diagnostic, Diagnostic, JobFile, JobSpec, Mode, Parser};

struct Lines;

/// The next word of `rest` and its column, moving both on.
fn word<'a>(rest: &mut &'a str, column: &mut usize) -> Option<(usize, &'a str)> {
    *column += rest.len() - rest.trim_start().len();
    *rest = rest.trim_start();
    let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
    let (found, tail) = rest.split_at(end);
    let at = *column;
    (*column, *rest) = (at + end, tail);
    (!found.is_empty()).then_some((at, found))
}

fn job(line: &str, number: usize, mode: Mode) -> Result<JobSpec, Diagnostic> {
    let (mut rest, mut column) = (line, 1);
    let mut next = |what: &str| word(&mut rest, &mut column).ok_or_else(|| diagnostic(number, line.len() + 1, format!("{what} missing: QUEUE GPUS MEMORY_GB COMMAND")));
    let (at, queue) = next("the queue")?;
    let queue = queue.parse().map_err(|_| diagnostic(number, at, format!("the queue '{queue}' is not a number")))?;
    let (at, gpus) = next("the GPU count")?;
    let gpu_count: u32 = gpus.parse().ok().filter(|&n| n >= 1).ok_or_else(|| diagnostic(number, at, format!("the GPU count '{gpus}' is not 1 or more")))?;
    if mode == Mode::Single && gpu_count != 1 {
        return Err(diagnostic(number, at, "a single-GPU file gives every job 1 GPU"));
    }
    let (at, memory) = next("the memory")?;
    let memory_gb = memory.parse().ok().filter(|m: &f64| m.is_finite() && *m >= 0.0).ok_or_else(|| diagnostic(number, at, format!("the memory '{memory}' is not a number of GB")))?;
    let command = rest.trim();
    if command.is_empty() {
        return Err(diagnostic(number, line.len() + 1, "the command missing: QUEUE GPUS MEMORY_GB COMMAND"));
    }
    Ok(JobSpec { queue, commands: vec![command.to_string()], gpu_count, memory_gb, line: u32::try_from(number).unwrap_or(u32::MAX), provider: None, burst: None })
}

impl Parser for Lines {
    fn parse(_file_name: &str, mode: Option<Mode>, text: &str) -> Result<JobFile, Vec<Diagnostic>> {
        let mode = mode.unwrap_or(Mode::Multi);
        let lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
        let (jobs, problems): (Vec<_>, Vec<_>) = lines.map(|(i, l)| job(l, i + 1, mode)).partition(Result::is_ok);
        if problems.is_empty() { Ok(JobFile { mode, jobs: jobs.into_iter().flatten().collect() }) } else { Err(problems.into_iter().filter_map(Result::err).collect()) }
    }

    /// A job of several command lines (from another format) becomes one line of them joined by `&&`.
    fn render(file: &JobFile) -> String {
        file.jobs.iter().map(|j| format!("{} {} {} {}\n", j.queue, j.gpu_count, j.memory_gb, j.commands.join(" && "))).collect()
    }
}

gantry_plugin::export_parser!(Lines);

#[cfg(test)]
mod tests {
    use super::Lines;
    use gantry_plugin::parser::{check, Mode};

    #[test]
    fn each_line_is_a_job_and_the_file_round_trips() {
        let file = check::<Lines>("jobs.txt", None, "# sweep\n0 1 8 python train.py --lr 1e-3\n\n  0 2 16.5   torchrun  train.py\n").expect("parses");
        assert_eq!(file.jobs.len(), 2);
        assert_eq!((file.jobs[1].queue, file.jobs[1].gpu_count, file.jobs[1].memory_gb), (0, 2, 16.5));
        assert_eq!(file.jobs[1].commands, ["torchrun  train.py"]);
    }

    #[test]
    fn every_bad_line_is_named_with_its_column() {
        let err = check::<Lines>("jobs.txt", Some(Mode::Single), "x 1 8 a\n0 2 8 b\n0 1 lots c\n0 1 8\n").expect_err("four bad lines");
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines, [
            "jobs.txt:1:1: the queue 'x' is not a number",
            "jobs.txt:2:3: a single-GPU file gives every job 1 GPU",
            "jobs.txt:3:5: the memory 'lots' is not a number of GB",
            "jobs.txt:4:6: the command missing: QUEUE GPUS MEMORY_GB COMMAND",
        ]);
    }
}
