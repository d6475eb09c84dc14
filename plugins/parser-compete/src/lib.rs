//! The command-file formats of the GPU competition scheduler (seed 004).
//!
//! A file is a list of blocks separated by blank lines. A single-GPU block (`command_gpu*.txt`) is a
//! queue id line, one or more command lines and a memory line in GB; a multi-GPU block
//! (`command_gpus*.txt`) has a GPU-count line before the memory line. Lines whose first non-blank
//! character is `#` are comments; a `#` later in a line belongs to the command.
//!
//! gantry's one extension, in lines seed 004 reads as comments: a block may start with
//! `#gantry array INDICES` (Slurm's syntax: `0..9`, `1,5,7`, `0..20:2`) or with one or more
//! `#gantry sweep NAME=VALUES` (`1e-3,3e-4` or `1..3`), and stands for one job per index or per
//! combination of values, `{}` in its commands replaced by the index and `{NAME}` by the value.
//! The jobs keep the block's queue id, so they run one after another in that queue, as the
//! blocks one would otherwise write by hand would.
//!
//! Where a block's jobs run: `#gantry provider NAME` sends them to a configured provider (Slurm,
//! Kubernetes) instead of this node's GPUs; `#gantry burst [max-wait=30m] [to=slurm,k8s]` lets
//! them wait here at most that long (default: the daemon's `burst_max_wait_s`) and then go to
//! the first of those providers (default: every configured one) that takes them. The host checks
//! that the providers are configured and names the block's line when one is not.

mod bindings {
    wit_bindgen::generate!({ path: "../../wit", world: "parser-plugin", additional_derives: [PartialEq] });
}

use bindings::exports::gantry::plugin::meta::{Guest as MetaGuest, PluginInfo, PluginKind};
use bindings::exports::gantry::plugin::parser::{Burst, Diagnostic, Guest, JobFile, JobSpec, Mode};

// Only the component build exports it; native builds exist for unit tests.
#[cfg_attr(not(target_family = "wasm"), allow(dead_code))]
struct CompeteParser;

impl MetaGuest for CompeteParser {
    fn info() -> PluginInfo {
        PluginInfo {
            name: env!("CARGO_PKG_NAME").into(),
            version: env!("CARGO_PKG_VERSION").into(),
            kind: PluginKind::Parser,
            wit_version: wit_version(),
        }
    }
}

impl Guest for CompeteParser {
    fn parse(file_name: String, mode: Option<Mode>, text: String) -> Result<JobFile, Vec<Diagnostic>> {
        parse(&file_name, mode, &text)
    }

    fn render(file: JobFile) -> String {
        render(&file)
    }
}

// Exported names such as `gantry:plugin/parser@0.5.0#parse` are only valid in a component; the
// native build (for unit tests) exports nothing.
#[cfg(target_family = "wasm")]
bindings::export!(CompeteParser with_types_in bindings);

fn wit_version() -> String {
    let wit = include_str!("../../../wit/gantry.wit");
    wit.lines()
        .find_map(|l| l.trim().strip_prefix("package gantry:plugin@"))
        .map(|v| v.trim_end_matches(';').to_string())
        .unwrap_or_default()
}

/// The mode a file name implies: seed 004 names single-GPU files `command_gpu{_N}.txt` and
/// multi-GPU files `command_gpus{_N}.txt`.
pub fn mode_from_file_name(file_name: &str) -> Option<Mode> {
    let base = file_name.rsplit(['/', '\\']).next().unwrap_or(file_name);
    if base.starts_with("command_gpus") {
        Some(Mode::Multi)
    } else if base.starts_with("command_gpu") {
        Some(Mode::Single)
    } else {
        None
    }
}

/// A non-blank, non-comment line with its 1-based number.
#[derive(Clone, Copy)]
struct Line<'a> {
    number: u32,
    text: &'a str,
}

/// What starts a directive line.
const DIRECTIVE: &str = "#gantry";

/// The most jobs one block may stand for (the host takes at most this many per file).
const MAX_ELEMENTS: usize = 10_000;

fn is_directive(line: &str) -> bool {
    line.strip_prefix(DIRECTIVE).is_some_and(|rest| rest.is_empty() || rest.starts_with(char::is_whitespace))
}

/// A directive line's verb and the rest of it.
fn verb(line: &str) -> (&str, &str) {
    let rest = line[DIRECTIVE.len()..].trim();
    rest.split_once(char::is_whitespace).map_or((rest, ""), |(v, a)| (v, a.trim()))
}

/// Where the block's jobs run, as its `provider` and `burst` lines say.
type Target = (Option<String>, Option<Burst>);

fn diagnostic(line: u32, column: u32, message: String) -> Diagnostic {
    Diagnostic { line, column, message }
}

pub fn parse(file_name: &str, mode: Option<Mode>, text: &str) -> Result<JobFile, Vec<Diagnostic>> {
    let Some(mode) = mode.or_else(|| mode_from_file_name(file_name)) else {
        return Err(vec![diagnostic(
            0,
            0,
            format!(
                "cannot tell the format of '{file_name}' from its name: name it command_gpu*.txt \
                 (one GPU per job) or command_gpus*.txt (GPU count per job), or give the mode"
            ),
        )]);
    };

    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut blocks: Vec<Vec<Line<'_>>> = Vec::new();
    let mut current: Vec<Line<'_>> = Vec::new();
    for (i, raw) in text.split('\n').enumerate() {
        let number = u32::try_from(i + 1).unwrap_or(u32::MAX);
        let line = raw.trim();
        if line.is_empty() {
            if !current.is_empty() {
                blocks.push(std::mem::take(&mut current));
            }
        } else if !line.starts_with('#') || is_directive(line) {
            current.push(Line { number, text: line });
        }
    }
    if !current.is_empty() {
        blocks.push(current);
    }

    let mut jobs = Vec::with_capacity(blocks.len());
    let mut diagnostics = Vec::new();
    for block in &blocks {
        let (directives, lines): (Vec<Line<'_>>, Vec<Line<'_>>) = block.iter().copied().partition(|l| is_directive(l.text));
        let Some(first) = lines.first() else {
            diagnostics.push(diagnostic(block[0].number, 1, "a #gantry line belongs to the block it starts, and this block has nothing else".into()));
            continue;
        };
        let (targets, shapes): (Vec<Line<'_>>, Vec<Line<'_>>) = directives.iter().copied().partition(|l| matches!(verb(l.text).0, "provider" | "burst"));
        let job = match (parse_block(&lines, mode), target(&targets)) {
            (Ok(job), Ok((provider, burst))) => Ok(JobSpec { line: block[0].number, provider, burst, ..job }),
            (Err(mut d), Err(mut t)) => {
                t.append(&mut d);
                Err(t)
            }
            (Err(d), Ok(_)) | (Ok(_), Err(d)) => Err(d),
        };
        match (job, elements(&shapes)) {
            (Ok(job), Ok(None)) => jobs.push(job),
            (Ok(_), Ok(Some(elements))) if jobs.len() + elements.len() > MAX_ELEMENTS => {
                diagnostics.push(diagnostic(first.number, 1, format!("this block stands for {} jobs: with the blocks before it, more than the {MAX_ELEMENTS} a file may have", elements.len())));
            }
            (Ok(job), Ok(Some(elements))) => {
                jobs.extend(elements.iter().map(|(index, params)| JobSpec { commands: job.commands.iter().map(|c| sweep::fill(c, *index, params)).collect(), ..job.clone() }));
            }
            (Err(mut d), Ok(_)) => diagnostics.append(&mut d),
            (Ok(_), Err(mut e)) => diagnostics.append(&mut e),
            (Err(mut d), Err(mut e)) => {
                diagnostics.append(&mut e);
                diagnostics.append(&mut d);
            }
        }
    }
    if diagnostics.is_empty() {
        Ok(JobFile { mode, jobs })
    } else {
        Err(diagnostics)
    }
}

/// One job a block stands for: its index, and its sweep values by name.
type Element = (u32, Vec<(String, String)>);

/// What a block's `#gantry` lines make of it: `None` for one job, else its elements.
fn elements(directives: &[Line<'_>]) -> Result<Option<Vec<Element>>, Vec<Diagnostic>> {
    // The `array` line's number and indices; the swept parameters with their values.
    let mut indices: Option<(u32, Vec<u32>)> = None;
    let mut params: Vec<(String, Vec<String>)> = Vec::new();
    let mut wrong = Vec::new();
    for line in directives {
        let (verb, argument) = verb(line.text);
        match verb {
            "array" if indices.is_some() => wrong.push(diagnostic(line.number, 1, "a second #gantry array line; give all indices on one".into())),
            "array" => match sweep::parse_indices(argument, MAX_ELEMENTS) {
                Ok((_, Some(_))) => wrong.push(diagnostic(line.number, 1, "%N has no meaning here: a block's jobs run one after another in its queue (gantry submit --array takes %N)".into())),
                Ok((list, None)) => indices = Some((line.number, list)),
                Err(e) => wrong.push(diagnostic(line.number, 1, format!("#gantry array {argument}: {e}"))),
            },
            "sweep" => match argument.split_once('=') {
                Some((name, values)) if sweep::is_param_name(name.trim()) && !params.iter().any(|(n, _)| n == name.trim()) => {
                    params.push((name.trim().to_string(), sweep::parse_values(values, MAX_ELEMENTS)));
                }
                _ => wrong.push(diagnostic(line.number, 1, format!("#gantry sweep {argument}: not NAME=VALUES with a NAME of letters, digits and _ not swept before"))),
            },
            other => wrong.push(diagnostic(
                line.number,
                1,
                format!("unknown #gantry line '{other}': it is `#gantry array INDICES`, `#gantry sweep NAME=VALUES`, `#gantry provider NAME` or `#gantry burst [max-wait=DURATION] [to=NAME,…]`"),
            )),
        }
    }
    if let (Some((number, _)), false) = (&indices, params.is_empty()) {
        wrong.push(diagnostic(*number, 1, "a block is an array or a sweep, not both".into()));
    }
    if !wrong.is_empty() {
        return Err(wrong);
    }
    match (indices, params.is_empty()) {
        (Some((_, list)), _) => Ok(Some(list.into_iter().map(|i| (i, Vec::new())).collect())),
        (None, true) => Ok(None),
        (None, false) => match sweep::grid(&params, MAX_ELEMENTS) {
            Some(grid) => Ok(Some(grid.into_iter().enumerate().map(|(n, values)| (u32::try_from(n).unwrap_or(u32::MAX), values)).collect())),
            None => Err(vec![diagnostic(directives[0].number, 1, format!("this sweep has more than {MAX_ELEMENTS} combinations"))]),
        },
    }
}

/// A provider's name as `[providers.NAME]` allows it.
fn is_provider_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn provider_names(text: &str, line: u32) -> Result<Vec<String>, Diagnostic> {
    let names: Vec<String> = text.split(',').map(|n| n.trim().to_string()).collect();
    match names.iter().find(|n| !is_provider_name(n)) {
        Some(bad) => Err(diagnostic(line, 1, format!("'{bad}' is not a provider's name (1 to 64 letters, digits, '-' or '_')"))),
        None => Ok(names),
    }
}

/// What a block's `provider` and `burst` lines make of it: at most one of either, not both.
fn target(lines: &[Line<'_>]) -> Result<Target, Vec<Diagnostic>> {
    let (mut provider, mut burst) = (None, None);
    let mut wrong = Vec::new();
    for line in lines {
        let (verb, argument) = verb(line.text);
        if provider.is_some() || burst.is_some() {
            wrong.push(diagnostic(line.number, 1, format!("#gantry {verb}: a block has one provider or burst line: it runs on a provider, or bursts to one, not both")));
            continue;
        }
        if verb == "provider" {
            match provider_names(argument, line.number) {
                Ok(names) if names.len() == 1 => provider = names.into_iter().next(),
                Ok(_) => wrong.push(diagnostic(line.number, 1, format!("#gantry provider {argument}: one provider; to try several, write #gantry burst to={argument}"))),
                Err(d) => wrong.push(d),
            }
            continue;
        }
        let mut spec = Burst { max_wait_s: None, providers: Vec::new() };
        let mut ok = true;
        for option in argument.split_whitespace() {
            let result = match option.split_once('=') {
                Some(("max-wait", wait)) => sweep::seconds(wait).map(|s| spec.max_wait_s = Some(s)).map_err(|e| diagnostic(line.number, 1, format!("#gantry burst max-wait: {e}"))),
                Some(("to", names)) => provider_names(names, line.number).map(|names| spec.providers = names),
                _ => Err(diagnostic(line.number, 1, format!("#gantry burst: '{option}' is not max-wait=DURATION or to=NAME,…"))),
            };
            if let Err(d) = result {
                wrong.push(d);
                ok = false;
            }
        }
        if ok {
            burst = Some(spec);
        }
    }
    if wrong.is_empty() { Ok((provider, burst)) } else { Err(wrong) }
}

fn parse_block(block: &[Line<'_>], mode: Mode) -> Result<JobSpec, Vec<Diagnostic>> {
    let first = &block[0];
    let (needed, shape) = match mode {
        Mode::Single => (3, "a queue id, at least one command line and the memory in GB"),
        Mode::Multi => (4, "a queue id, at least one command line, a GPU count and the memory in GB"),
    };
    if block.len() < needed {
        let missing = match (mode, block.len()) {
            (Mode::Single, 2) | (Mode::Multi, 3) => " (is the memory line missing?)",
            _ => "",
        };
        return Err(vec![diagnostic(
            first.number,
            1,
            format!("block has {} line(s), it needs {shape}{missing}", block.len()),
        )]);
    }

    let mut diagnostics = Vec::new();
    let queue = first.text.parse::<u32>().map_err(|_| {
        diagnostic(first.number, 1, format!("queue id must be a whole number ≥ 0, found '{}'", first.text))
    });

    let memory_line = &block[block.len() - 1];
    let memory = parse_memory(memory_line);
    let (gpu_count, commands_end) = match mode {
        Mode::Single => (Ok(1), block.len() - 1),
        Mode::Multi => {
            let line = &block[block.len() - 2];
            let count = match line.text.parse::<u32>() {
                Ok(0) => Err(diagnostic(line.number, 1, "GPU count must be at least 1, found 0".into())),
                Ok(n) => Ok(n),
                Err(_) => Err(diagnostic(
                    line.number,
                    1,
                    format!("GPU count must be a whole number ≥ 1, found '{}'", line.text),
                )),
            };
            (count, block.len() - 2)
        }
    };
    let commands: Vec<String> = block[1..commands_end].iter().map(|l| l.text.to_string()).collect();

    let queue = queue.map_err(|d| diagnostics.push(d)).ok();
    let gpu_count = gpu_count.map_err(|d| diagnostics.push(d)).ok();
    let memory_gb = memory.map_err(|d| diagnostics.push(d)).ok();
    match (queue, gpu_count, memory_gb) {
        (Some(queue), Some(gpu_count), Some(memory_gb)) => Ok(JobSpec { queue, commands, gpu_count, memory_gb, line: first.number, provider: None, burst: None }),
        _ => Err(diagnostics),
    }
}

/// Memory in GB, as a plain number; a `G` or `GB` suffix is accepted because people write it.
fn parse_memory(line: &Line<'_>) -> Result<f64, Diagnostic> {
    let lower = line.text.to_ascii_lowercase();
    let number = lower.trim_end_matches("gb").trim_end_matches('g').trim_end();
    match number.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        Ok(_) => Err(diagnostic(
            line.number,
            1,
            format!("memory must be a number of GB ≥ 0, found '{}'", line.text),
        )),
        Err(_) => Err(diagnostic(
            line.number,
            1,
            format!(
                "expected the memory in GB as the block's last line, found '{}' (is the memory line missing?)",
                line.text
            ),
        )),
    }
}

pub fn render(file: &JobFile) -> String {
    let header = match file.mode {
        Mode::Single => "# gantry command file, one GPU per job: queue id, command line(s), memory (GB)",
        Mode::Multi => "# gantry command file, several GPUs per job: queue id, command line(s), GPU count, memory (GB)",
    };
    let mut out = String::from(header);
    out.push('\n');
    for job in &file.jobs {
        out.push('\n');
        if let Some(provider) = &job.provider {
            out.push_str(&format!("{DIRECTIVE} provider {provider}\n"));
        }
        if let Some(burst) = &job.burst {
            out.push_str(&format!("{DIRECTIVE} burst"));
            if let Some(wait) = burst.max_wait_s {
                out.push_str(&format!(" max-wait={wait}s"));
            }
            if !burst.providers.is_empty() {
                out.push_str(&format!(" to={}", burst.providers.join(",")));
            }
            out.push('\n');
        }
        out.push_str(&job.queue.to_string());
        out.push('\n');
        for command in &job.commands {
            out.push_str(command);
            out.push('\n');
        }
        if file.mode == Mode::Multi {
            out.push_str(&job.gpu_count.to_string());
            out.push('\n');
        }
        // f64's Display is the shortest text that parses back to the same value.
        out.push_str(&job.memory_gb.to_string());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn single(text: &str) -> Result<JobFile, Vec<Diagnostic>> {
        parse("command_gpu.txt", None, text)
    }

    fn multi(text: &str) -> Result<JobFile, Vec<Diagnostic>> {
        parse("command_gpus.txt", None, text)
    }

    fn ok(r: Result<JobFile, Vec<Diagnostic>>) -> JobFile {
        match r {
            Ok(f) => f,
            Err(d) => panic!("unexpected diagnostics: {d:?}"),
        }
    }

    fn errors(r: Result<JobFile, Vec<Diagnostic>>) -> Vec<Diagnostic> {
        match r {
            Ok(f) => panic!("expected diagnostics, parsed {f:?}"),
            Err(d) => d,
        }
    }

    /// `file` but for where its blocks start, which a rendering does not keep.
    fn unlined(file: &JobFile) -> JobFile {
        JobFile { mode: file.mode, jobs: file.jobs.iter().map(|j| JobSpec { line: 0, ..j.clone() }).collect() }
    }

    fn assert_round_trips(file: &JobFile) {
        let again = ok(parse("any.txt", Some(file.mode), &render(file)));
        assert_eq!(unlined(&again), unlined(file));
    }

    #[test]
    fn provider_and_burst_lines_say_where_a_block_runs() {
        let text = "1\ntrain a\n4\n\n# comment\n#gantry provider slurm\n2\ntrain b\n4\n\n#gantry burst max-wait=30m to=slurm,k8s\n#gantry array 0..1\n3\ntrain {}\n4\n\n#gantry burst\n4\nx\n1\n";
        let file = ok(single(text));
        let shown: Vec<_> = file.jobs.iter().map(|j| (j.line, j.provider.clone(), j.burst.clone())).collect();
        let burst = |wait, to: &[&str]| Some(Burst { max_wait_s: wait, providers: to.iter().map(|s| s.to_string()).collect() });
        assert_eq!(
            shown,
            vec![
                (1, None, None),
                (6, Some("slurm".to_string()), None),
                (11, None, burst(Some(1800), &["slurm", "k8s"])),
                (11, None, burst(Some(1800), &["slurm", "k8s"])),
                (17, None, burst(None, &[])),
            ]
        );
        assert_round_trips(&file);

        for (text, line, wanted) in [
            ("#gantry provider slurm\n#gantry burst\n1\nx\n1\n", 2, "not both"),
            ("#gantry provider a,b\n1\nx\n1\n", 1, "#gantry burst to=a,b"),
            ("#gantry provider\n1\nx\n1\n", 1, "is not a provider's name"),
            ("1\nx\n1\n\n#gantry burst max-wait=30\n1\nx\n1\n", 5, "give a number and a unit"),
            ("#gantry burst to=sl urm\n1\nx\n1\n", 1, "'urm' is not max-wait=DURATION or to=NAME"),
            ("#gantry burst to=a/b\n1\nx\n1\n", 1, "'a/b' is not a provider's name"),
        ] {
            let found = errors(single(text));
            assert!(found.iter().any(|d| d.line == line && d.message.contains(wanted)), "{text:?}: {found:?}");
        }
    }

    #[test]
    fn seed_single_example() {
        let text = "# 队列ID\n1\n# 命令（不需要引号）\npython script.py --arg1 value1\n# 显存需求(GB)\n20\n\n# 下一个任务块\n2\nbash run.sh\n25\n";
        let file = ok(single(text));
        assert_eq!(file.mode, Mode::Single);
        assert_eq!(file.jobs.len(), 2);
        assert_eq!(file.jobs[0].queue, 1);
        assert_eq!(file.jobs[0].commands, vec!["python script.py --arg1 value1"]);
        assert_eq!(file.jobs[0].gpu_count, 1);
        assert_eq!(file.jobs[0].memory_gb, 20.0);
        assert_eq!(file.jobs[1].commands, vec!["bash run.sh"]);
        assert_eq!(file.jobs[1].memory_gb, 25.0);
        assert_round_trips(&file);
    }

    #[test]
    fn seed_multi_example() {
        let text = "# 队列ID\n1\n# 命令\npython script.py --arg1 value1\n# GPU数量需求\n2\n# 显存需求(GB)\n20\n";
        let file = ok(multi(text));
        assert_eq!(file.mode, Mode::Multi);
        assert_eq!(file.jobs[0].gpu_count, 2);
        assert_eq!(file.jobs[0].memory_gb, 20.0);
        assert_round_trips(&file);
    }

    #[test]
    fn several_command_lines_form_one_job() {
        let file = ok(single("3\ncd /data\nsource env.sh\npython train.py\n12.5\n"));
        assert_eq!(file.jobs[0].commands, vec!["cd /data", "source env.sh", "python train.py"]);
        assert_eq!(file.jobs[0].memory_gb, 12.5);
        assert_round_trips(&file);
    }

    #[test]
    fn crlf_bom_trailing_whitespace_and_no_final_newline() {
        let text = "\u{feff}1\r\npython a.py  \r\n20 \t\r\n\r\n\r\n\r\n2\r\npython b.py\r\n8";
        let file = ok(single(text));
        assert_eq!(file.jobs.len(), 2);
        assert_eq!(file.jobs[0].queue, 1);
        assert_eq!(file.jobs[0].commands, vec!["python a.py"]);
        assert_eq!(file.jobs[1].memory_gb, 8.0);
    }

    #[test]
    fn a_gantry_array_or_sweep_line_makes_a_block_one_job_per_element_in_its_queue() {
        let text = "#gantry array 0..2\n1\npython train.py --seed {}\n20\n\n# a comment, not a sweep\n#gantry sweep lr=1e-3,3e-4\n#gantry sweep seed=1..2\n2\necho {lr} {seed}\n8\n";
        let file = ok(single(text));
        let commands: Vec<(u32, &str)> = file.jobs.iter().map(|j| (j.queue, j.commands[0].as_str())).collect();
        assert_eq!(commands, [
            (1, "python train.py --seed 0"),
            (1, "python train.py --seed 1"),
            (1, "python train.py --seed 2"),
            (2, "echo 1e-3 1"),
            (2, "echo 1e-3 2"),
            (2, "echo 3e-4 1"),
            (2, "echo 3e-4 2"),
        ]);
        assert!(file.jobs.iter().all(|j| j.memory_gb == 20.0 || j.memory_gb == 8.0));
        assert_round_trips(&file);
    }

    #[test]
    fn a_wrong_gantry_line_names_its_line() {
        for (text, line, says) in [
            ("#gantry array 3..1\n1\ntrue\n1\n", 1, "#gantry array 3..1"),
            ("#gantry array 0..3%2\n1\ntrue\n1\n", 1, "%N"),
            ("1\n#gantry sweep a b=1\ntrue\n1\n", 2, "NAME=VALUES"),
            ("#gantry repeat 3\n1\ntrue\n1\n", 1, "unknown #gantry line 'repeat'"),
            ("#gantry array 0..1\n#gantry sweep a=1,2\n1\ntrue\n1\n", 1, "not both"),
            ("#gantry array 0..1\n\n1\ntrue\n1\n", 1, "belongs to the block"),
        ] {
            let found = errors(single(text));
            assert!(found.iter().any(|d| d.line == line && d.message.contains(says)), "{text:?}: {found:?}");
        }
    }

    #[test]
    fn hash_inside_a_command_is_not_a_comment() {
        let file = ok(single("1\necho 'step #1' # keep\n4\n"));
        assert_eq!(file.jobs[0].commands, vec!["echo 'step #1' # keep"]);
    }

    #[test]
    fn indented_comment_is_a_comment() {
        let file = ok(single("1\n   # note\npython a.py\n4\n"));
        assert_eq!(file.jobs[0].commands, vec!["python a.py"]);
    }

    #[test]
    fn chinese_text_survives() {
        let file = ok(single("7\npython 训练.py --名字 测试\n10\n"));
        assert_eq!(file.jobs[0].commands, vec!["python 训练.py --名字 测试"]);
        assert_round_trips(&file);
    }

    #[test]
    fn empty_and_comment_only_files_have_no_jobs() {
        assert!(ok(single("")).jobs.is_empty());
        assert!(ok(single("\n\n   \n# only a comment\n")).jobs.is_empty());
        assert_round_trips(&ok(multi("")));
    }

    #[test]
    fn memory_suffix_is_accepted() {
        assert_eq!(ok(single("1\na\n20G\n")).jobs[0].memory_gb, 20.0);
        assert_eq!(ok(single("1\na\n20 GB\n")).jobs[0].memory_gb, 20.0);
    }

    #[test]
    fn missing_memory_line_names_the_line() {
        let d = errors(single("1\npython a.py\n"));
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].line, 1);
        assert!(d[0].message.contains("memory line missing"), "{}", d[0].message);

        let d = errors(single("\n\n1\npython a.py\npython b.py\n"));
        assert_eq!(d[0].line, 5);
        assert!(d[0].message.contains("python b.py"), "{}", d[0].message);
    }

    #[test]
    fn non_numeric_queue_id_names_the_line() {
        let d = errors(single("1\na\n2\n\nqueue-two\nb\n3\n"));
        assert_eq!(d.len(), 1);
        assert_eq!((d[0].line, d[0].column), (5, 1));
        assert!(d[0].message.contains("queue-two"));
    }

    #[test]
    fn negative_memory_is_refused() {
        let d = errors(single("1\na\n-4\n"));
        assert_eq!(d[0].line, 3);
        assert!(d[0].message.contains("≥ 0"), "{}", d[0].message);
        assert!(!errors(single("1\na\nNaN\n")).is_empty());
        assert!(!errors(single("1\na\ninf\n")).is_empty());
    }

    #[test]
    fn zero_gpu_count_is_refused() {
        let d = errors(multi("1\npython a.py\n0\n20\n"));
        assert_eq!(d[0].line, 3);
        assert!(d[0].message.contains("at least 1"));
        let d = errors(multi("1\npython a.py\ntwo\n20\n"));
        assert!(d[0].message.contains("'two'"));
    }

    #[test]
    fn every_bad_block_is_reported() {
        let d = errors(single("x\na\n1\n\n2\nb\n-1\n\n3\nc\n1\n"));
        assert_eq!(d.iter().map(|d| d.line).collect::<Vec<_>>(), vec![1, 7]);
    }

    #[test]
    fn multi_block_missing_a_line() {
        let d = errors(multi("1\npython a.py\n20\n"));
        assert!(d[0].message.contains("GPU count"), "{}", d[0].message);
    }

    #[test]
    fn mode_comes_from_the_name_or_the_caller() {
        assert_eq!(mode_from_file_name("command/command_gpu_2.txt"), Some(Mode::Single));
        assert_eq!(mode_from_file_name("command_gpus_1.txt"), Some(Mode::Multi));
        assert_eq!(mode_from_file_name("jobs.txt"), None);
        let d = errors(parse("jobs.txt", None, "1\na\n1\n"));
        assert!(d[0].message.contains("jobs.txt"));
        assert_eq!(ok(parse("jobs.txt", Some(Mode::Multi), "1\na\n2\n1\n")).jobs[0].gpu_count, 2);
    }

    #[test]
    fn examples_round_trip() {
        for (name, text) in [
            ("command_gpu.txt", include_str!("../../../command/command_gpu.txt")),
            ("command_gpus.txt", include_str!("../../../command/command_gpus.txt")),
        ] {
            let file = ok(parse(name, None, text));
            assert!(!file.jobs.is_empty(), "{name} has jobs");
            assert_round_trips(&file);
        }
    }

    #[test]
    fn odd_memory_values_round_trip() {
        let file = JobFile {
            mode: Mode::Single,
            jobs: vec![JobSpec { queue: 0, commands: vec!["true".into()], gpu_count: 1, memory_gb: 0.1 + 0.2, line: 0, provider: None, burst: None }],
        };
        assert_round_trips(&file);
    }
}
