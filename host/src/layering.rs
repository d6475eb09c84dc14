//! The house's floors, checked over the source: every `crate::…` path in a module's files must
//! name its own module or a floor below it. A new import that points up fails here, with the
//! file and the path.

use std::path::Path;

/// Top-level modules by floor, from the bottom. A module may use its own floor's others only
/// among the parts (floor 1), whose circles `import-cycles.py` watches.
const FLOORS: &[&[&str]] = &[
    &["model"],
    &[
        "unix", "procfs", "memory", "watch", "metrics", "tasks", "log_access", "command_files", "config", "auth", "store", "gpu", "host_info", "plugin", "policy", "executor",
        "scheduler", "federation", "tls", "replay", "providers",
    ],
    &["service"],
    &["http"],
    &["daemon"],
];

fn floor(module: &str) -> Option<usize> {
    FLOORS.iter().position(|floor| floor.contains(&module))
}

/// The source of a file without its inline unit tests (`#[cfg(test)] mod tests { … }`, at the
/// end of a file), which may reach anywhere.
fn without_tests(text: &str) -> &str {
    let mut from = 0;
    while let Some(at) = text[from..].find("#[cfg(test)]").map(|i| i + from) {
        let after = text[at + "#[cfg(test)]".len()..].trim_start();
        if after.starts_with("mod tests {") {
            return &text[..at];
        }
        from = at + 1;
    }
    text
}

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("source dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            // Test modules in folders of their own reach anywhere, like inline ones.
            if path.file_name().is_some_and(|n| n != "tests") {
                files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") && path.file_name().is_some_and(|n| n != "tests.rs") {
            out.push(path);
        }
    }
}

#[test]
fn imports_only_go_down() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    files(&src, &mut all);
    let mut wrong = Vec::new();
    let mut checked = 0;
    for path in all {
        let relative = path.strip_prefix(&src).expect("under src");
        let module = relative.components().next().and_then(|c| c.as_os_str().to_str()).map(|m| m.trim_end_matches(".rs")).unwrap_or_default();
        let Some(own) = floor(module) else { continue };
        let text = std::fs::read_to_string(&path).expect("readable source");
        let code = without_tests(&text);
        for (at, _) in code.match_indices("crate::") {
            let rest = &code[at + "crate::".len()..];
            let target: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            checked += 1;
            match floor(&target) {
                Some(_) if target == module => {}
                Some(theirs) if theirs < own || (theirs == 1 && own == 1) => {}
                Some(_) => wrong.push(format!("{}: crate::{target} is not below {module}", relative.display())),
                None if target.is_empty() => {}
                None => wrong.push(format!("{}: crate::{target} is on no floor; add it to FLOORS", relative.display())),
            }
        }
    }
    assert!(checked > 100, "only {checked} paths found: is the source where this test looks?");
    assert!(wrong.is_empty(), "imports that point up:\n{}", wrong.join("\n"));
}

#[test]
fn the_model_imports_nothing_of_gantry() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/model");
    let mut all = Vec::new();
    files(&dir, &mut all);
    for path in all {
        let text = std::fs::read_to_string(&path).expect("readable source");
        assert!(!without_tests(&text).contains("crate::"), "{} imports from gantry", path.display());
    }
}
