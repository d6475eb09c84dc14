//! The one wasmtime `Engine` of the daemon, the epoch ticker that bounds every call in time, and
//! the cache of precompiled components.
//!
//! Compiling a component takes tens of milliseconds; loading its precompiled artifact is a file
//! map. Artifacts are keyed by the component's SHA-256 and the engine's compatibility hash, so a
//! different wasmtime or engine configuration never loads a stale artifact.

use super::PluginError;
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Duration;
use wasmtime::component::Component;
use wasmtime::{Config, Engine};

/// How often the epoch advances. Deadlines are whole ticks, so this is their resolution; the
/// ticker wakes this often for the daemon's whole life, so it is not finer than deadlines need.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

#[derive(Clone)]
pub struct PluginEngine {
    engine: Engine,
    cache_dir: Option<PathBuf>,
    compat: String,
    /// Where components are compiled into the cache in a process of their own; in this one if
    /// none.
    compiler: Option<PathBuf>,
}

impl PluginEngine {
    /// `cache_dir` holds precompiled artifacts. Anyone who can write there can run native code in
    /// the daemon, so it is created private to the user.
    pub fn new(cache_dir: Option<PathBuf>) -> Result<Self, PluginError> {
        let mut config = Config::new();
        // Memory keeps wasmtime's default reservation and guard region: they cost only address
        // space (a few warm instances per plugin) and let compiled code skip explicit bounds
        // checks, which made placement ~2x slower when the guard was shrunk.
        // wasmtime is built without its `threads` feature: no plugin can declare a shared memory,
        // which the store's limiter would not count.
        config.epoch_interruption(true);
        let engine = Engine::new(&config).map_err(|e| PluginEngine::engine_error(&e))?;

        if let Some(dir) = &cache_dir {
            create_private_dir(dir).map_err(|source| PluginError::Cache { path: dir.clone(), source })?;
        }

        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let compat = format!("{:016x}", hasher.finish());

        spawn_epoch_ticker(&engine);
        Ok(PluginEngine { engine, cache_dir, compat, compiler: None })
    }

    /// From now on a component not in the cache is compiled by `program plugin precompile
    /// CACHE_DIR` (gantryd), which reads it on its standard input and writes its artifact into
    /// the cache, and this process loads that. Cranelift's code and working memory (tens of MiB
    /// for a large component) then never enter this process, and a compile past its limit is
    /// killed rather than left to finish. Without a cache directory, compiles stay here.
    pub fn compiling_in(mut self, program: Option<PathBuf>) -> Self {
        self.compiler = program;
        self
    }

    fn artifact(&self, wasm: &Wasm<'_>) -> Option<PathBuf> {
        self.cache_dir.as_ref().map(|dir| dir.join(format!("{}-{}.cwasm", wasm.hash, self.compat)))
    }

    fn engine_error(e: &wasmtime::Error) -> PluginError {
        PluginError::Engine(format!("{e:#}"))
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Compiles `bytes`, or loads the artifact cached from an earlier compile. Blocking: call it off
    /// the async runtime.
    pub fn compile(&self, origin: &str, wasm: &Wasm<'_>) -> Result<Component, PluginError> {
        let compile_error = |e: wasmtime::Error| PluginError::Compile { origin: origin.to_string(), message: format!("{e:#}") };
        let Some(path) = self.artifact(wasm) else {
            return Component::new(&self.engine, wasm.bytes).map_err(compile_error);
        };

        if path.exists() {
            // SAFETY: the artifact was written by `precompile_component` of an engine with the same
            // compatibility hash, into a directory only this user can write.
            match unsafe { Component::deserialize_file(&self.engine, &path) } {
                Ok(component) => return Ok(component),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %format!("{e:#}"), "discarding unreadable plugin artifact");
                    let _ = std::fs::remove_file(&path);
                }
            }
        }

        self.write_artifact(origin, wasm.bytes, &path)?;
        // SAFETY: as above; the file was written just now from `precompile_component`.
        unsafe { Component::deserialize_file(&self.engine, &path) }.map_err(compile_error)
    }

    /// Compiles `bytes` into the cache and loads nothing: the compiler process's work. Blocking.
    pub fn precompile(&self, origin: &str, wasm: &Wasm<'_>) -> Result<(), PluginError> {
        match self.artifact(wasm) {
            Some(path) => self.write_artifact(origin, wasm.bytes, &path),
            None => Err(PluginError::Engine("precompiling needs a cache directory".into())),
        }
    }

    fn write_artifact(&self, origin: &str, bytes: &[u8], path: &Path) -> Result<(), PluginError> {
        let artifact = self.engine.precompile_component(bytes).map_err(|e| PluginError::Compile { origin: origin.to_string(), message: format!("{e:#}") })?;
        crate::unix::write_atomically(path, &artifact).map_err(|source| PluginError::Cache { path: path.to_path_buf(), source })
    }
}

impl PluginEngine {
    /// [`PluginEngine::compile`] bounded by `limit`: in the compiler process, killed at the
    /// limit, where one is set; else on a thread of its own, waited for at most `limit`, so that
    /// a component that takes longer (an enormous one, or one made to) is abandoned and whoever
    /// was loading it carries on (the thread finishes on its own).
    pub fn compile_within(&self, origin: &str, wasm: &Wasm<'_>, limit: Duration) -> Result<Component, PluginError> {
        if let (Some(program), Some(path)) = (&self.compiler, self.artifact(wasm)) {
            if !path.exists() {
                self.compile_apart(program, origin, wasm, limit)?;
            }
            return self.compile(origin, wasm);
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let (engine, name, copy, hash) = (self.clone(), origin.to_string(), wasm.bytes.to_vec(), wasm.hash.to_string());
        std::thread::Builder::new()
            .name("gantry-plugin-compile".into())
            .spawn(move || {
                let compiled = engine.compile(&name, &Wasm::known(&copy, &hash));
                drop(copy);
                // Cranelift's working memory, freed by now, would otherwise stay with the
                // allocator's arena for this thread (measured: 8 MB of a fresh daemon's private
                // memory after it compiled the bundled plugins).
                crate::memory::release_freed();
                drop(tx.send(compiled))
            })
            .map_err(|e| PluginError::Engine(format!("starting a compile thread: {e}")))?;
        rx.recv_timeout(limit).unwrap_or_else(|_| Err(PluginError::CompileTimeout { origin: origin.to_string(), limit }))
    }
}

impl PluginEngine {
    /// Runs the compiler process on `bytes`, killed at `limit`. Blocking.
    fn compile_apart(&self, program: &Path, origin: &str, wasm: &Wasm<'_>, limit: Duration) -> Result<(), PluginError> {
        use std::io::{Read, Write};
        use std::process::{Command, Stdio};
        let Some(dir) = &self.cache_dir else { return Ok(()) };
        let failed = |message: String| PluginError::Compile { origin: origin.to_string(), message };
        let mut child = Command::new(program)
            .args(["plugin", "precompile"])
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| PluginError::Engine(format!("starting the compiler {}: {e}", program.display())))?;
        let deadline = std::time::Instant::now() + limit;
        let stdin = child.stdin.take();
        let status = std::thread::scope(|s| {
            // Fed from a thread of its own, so that a compiler that stops reading still meets
            // its deadline; one that dies early closes its end, and stderr says why.
            s.spawn(move || stdin.map(|mut stdin| stdin.write_all(wasm.bytes)));
            loop {
                match child.try_wait() {
                    Ok(Some(status)) => return Ok(status),
                    Ok(None) if std::time::Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
                    Ok(None) => {
                        let _ = child.kill();
                        let _ = child.wait();
                        return Err(PluginError::CompileTimeout { origin: origin.to_string(), limit });
                    }
                    Err(e) => return Err(failed(format!("waiting for the compiler: {e}"))),
                }
            }
        })?;
        if status.success() {
            return if self.artifact(wasm).is_some_and(|path| path.exists()) { Ok(()) } else { Err(failed(format!("the compiler {} wrote no artifact", program.display()))) };
        }
        let mut said = String::new();
        let _ = child.stderr.take().map(|stderr| stderr.take(4096).read_to_string(&mut said));
        let said = said.trim().trim_start_matches("gantry: ").to_string();
        Err(failed(if said.is_empty() { format!("the compiler {status}") } else { said }))
    }
}

/// SHA-256 of a component, hex-encoded.
pub fn content_hash(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// A component's bytes and their [`content_hash`], taken once per load: the hash names its
/// artifact in the cache and its file's state in the registry. The bundled plugins carry the hash
/// computed when the binary was built, so a start that finds their artifacts cached never reads
/// their bytes, and they are not brought into the daemon's memory.
#[derive(Debug)]
pub struct Wasm<'a> {
    pub bytes: &'a [u8],
    pub hash: std::borrow::Cow<'a, str>,
}

impl<'a> Wasm<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Wasm { bytes, hash: content_hash(bytes).into() }
    }

    /// `bytes` whose hash is already known to be `hash`.
    pub fn known(bytes: &'a [u8], hash: &'a str) -> Self {
        Wasm { bytes, hash: hash.into() }
    }
}

/// Plugin calls in flight, in every engine of the process. Epochs only bound calls, so the
/// tickers advance them only while there is one: an idle daemon is not woken a hundred times a
/// second for deadlines nobody has.
static IN_FLIGHT: (std::sync::Mutex<usize>, std::sync::Condvar) = (std::sync::Mutex::new(0), std::sync::Condvar::new());

/// How long a ticker with no call to time sleeps before it looks whether its engine is gone.
const PARKED: Duration = Duration::from_secs(10);

fn in_flight() -> std::sync::MutexGuard<'static, usize> {
    IN_FLIGHT.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Held for the length of a bounded call (before its first poll: a guest that spins there is
/// cut by its epoch deadline too): while any is held, the epochs advance.
pub(super) struct Ticking(());

impl Ticking {
    pub(super) fn start() -> Ticking {
        let mut calls = in_flight();
        *calls += 1;
        if *calls == 1 {
            IN_FLIGHT.1.notify_all();
        }
        Ticking(())
    }
}

impl Drop for Ticking {
    fn drop(&mut self) {
        *in_flight() -= 1;
    }
}

/// Advances the engine's epoch every [`EPOCH_TICK`] while a call is in flight, for as long as
/// the engine lives. A deadline is armed relative to the epoch of its call's start and counts a
/// tick more than its length, so a first tick that comes early cuts no call short.
fn spawn_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    let spawned = std::thread::Builder::new().name("gantry-epoch".into()).spawn(move || {
        while let Some(engine) = weak.upgrade() {
            engine.increment_epoch();
            drop(engine);
            std::thread::sleep(EPOCH_TICK);
            let calls = in_flight();
            let _ = IN_FLIGHT.1.wait_timeout_while(calls, PARKED, |calls| *calls == 0);
        }
    });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the plugin epoch ticker; plugin calls will not time out");
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_hit_loads_the_same_component_without_recompiling() {
        let dir = tempfile::tempdir().expect("temp dir");
        let engine = PluginEngine::new(Some(dir.path().join("cache"))).expect("engine");
        let bytes = std::fs::read(env!("GANTRY_WASM_POLICY_BEST_FIT")).expect("built by build.rs");
        engine.compile("best-fit", &Wasm::new(&bytes)).expect("first compile");
        let artifacts: Vec<_> = std::fs::read_dir(dir.path().join("cache")).expect("cache dir").collect();
        assert_eq!(artifacts.len(), 1);
        engine.compile("best-fit", &Wasm::new(&bytes)).expect("cached load");
    }

    #[test]
    fn corrupt_artifact_is_recompiled() {
        let dir = tempfile::tempdir().expect("temp dir");
        let engine = PluginEngine::new(Some(dir.path().to_path_buf())).expect("engine");
        let bytes = std::fs::read(env!("GANTRY_WASM_POLICY_SPREAD")).expect("built by build.rs");
        engine.compile("spread", &Wasm::new(&bytes)).expect("first compile");
        for entry in std::fs::read_dir(dir.path()).expect("cache dir") {
            std::fs::write(entry.expect("entry").path(), b"garbage").expect("corrupt");
        }
        engine.compile("spread", &Wasm::new(&bytes)).expect("recompiled");
    }

    #[test]
    fn concurrent_compiles_of_one_component_share_the_cache() {
        let dir = tempfile::tempdir().expect("temp dir");
        let engine = PluginEngine::new(Some(dir.path().to_path_buf())).expect("engine");
        let bytes = std::fs::read(env!("GANTRY_WASM_PARSER_COMPETE")).expect("built by build.rs");
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..4).map(|_| s.spawn(|| engine.compile("parser", &Wasm::new(&bytes)).map(|_| ()))).collect();
            for h in handles {
                h.join().expect("no panic").expect("every compile succeeds");
            }
        });
    }

    /// A compiler program standing in for gantryd: a shell script.
    fn compiler(dir: &Path, script: &str) -> PathBuf {
        let path = dir.join("compiler");
        std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).expect("write");
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
        path
    }

    /// A compiler past its limit is killed, not left to finish; one that fails is reported in
    /// its own words, under the component's name.
    #[test]
    fn a_compiler_process_is_bounded_and_its_failure_named() {
        let dir = tempfile::tempdir().expect("temp dir");
        let bytes = std::fs::read(env!("GANTRY_WASM_POLICY_SPREAD")).expect("built by build.rs");
        let pid_file = dir.path().join("pid");
        let slow = compiler(dir.path(), &format!("echo $$ > {}; exec sleep 30", pid_file.display()));
        let engine = PluginEngine::new(Some(dir.path().join("cache"))).expect("engine").compiling_in(Some(slow));
        let started = std::time::Instant::now();
        let err = engine.compile_within("spread", &Wasm::new(&bytes), Duration::from_millis(300)).expect_err("too slow");
        assert!(matches!(err, PluginError::CompileTimeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10), "not waited for");
        let pid: i32 = std::fs::read_to_string(&pid_file).expect("the compiler ran").trim().parse().expect("pid");
        // SAFETY: signal 0 only asks whether the process exists.
        assert_ne!(unsafe { libc::kill(pid, 0) }, 0, "the compiler was killed and reaped");

        let failing = compiler(dir.path(), "cat > /dev/null; echo 'no such thing' >&2; exit 1");
        let engine = PluginEngine::new(Some(dir.path().join("cache"))).expect("engine").compiling_in(Some(failing));
        let err = engine.compile_within("spread.wasm", &Wasm::new(&bytes), Duration::from_secs(10)).expect_err("failed");
        assert_eq!(err.to_string(), PluginError::Compile { origin: "spread.wasm".into(), message: "no such thing".into() }.to_string());
    }

    #[test]
    fn garbage_is_a_compile_error_naming_the_origin() {
        let engine = PluginEngine::new(None).expect("engine");
        let err = engine.compile("junk.wasm", &Wasm::new(b"not wasm")).expect_err("refused");
        assert!(err.to_string().starts_with("junk.wasm:"), "{err}");
    }
}
