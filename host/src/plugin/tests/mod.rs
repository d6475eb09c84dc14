//! The runtime against real components: the shipped plugins and the fixtures under
//! `plugins/fixtures/`, all built from source by `build.rs`.

use super::*;
use crate::policy::{Decider, PolicyService};
use placement::{GpuState, PendingJob, Placement, Rejection, Rules};
use std::time::Instant;

const MISBEHAVE: &str = env!("GANTRY_WASM_POLICY_MISBEHAVE");
const FUTURE: &str = env!("GANTRY_WASM_POLICY_FUTURE");
const FIXTURE_V1: &str = env!("GANTRY_WASM_POLICY_FIXTURE_V1");
const FIXTURE_V2: &str = env!("GANTRY_WASM_POLICY_FIXTURE_V2");
const ASKS: &str = env!("GANTRY_WASM_POLICY_ASKS");

mod hostile;

fn runtime_with(files: &[(&str, &str)], per_plugin: HashMap<String, PluginSettings>) -> (tempfile::TempDir, Arc<PluginRuntime>) {
    runtime_with_defaults(files, PluginSettings::default(), per_plugin)
}

fn runtime_with_defaults(files: &[(&str, &str)], defaults: PluginSettings, per_plugin: HashMap<String, PluginSettings>) -> (tempfile::TempDir, Arc<PluginRuntime>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).expect("plugin dir");
    for (name, from) in files {
        std::fs::copy(from, plugins.join(name)).expect("copy fixture");
    }
    let options = RuntimeOptions {
        plugin_dir: Some(plugins),
        cache_dir: Some(crate::testing::shared_cache()),
        compiler: None,
        defaults,
        per_plugin,
    };
    (dir, PluginRuntime::new(options).expect("runtime starts"))
}

fn gpus(n: u32) -> Vec<GpuState> {
    (0..n).map(|index| GpuState { temperature_c: Some(40), ..placement::testing::gpu(index, 24_576) }).collect()
}

fn jobs(n: u64, memory_mib: u64) -> Vec<PendingJob> {
    (0..n).map(|id| placement::testing::job(id, memory_mib)).collect()
}

fn rules(fixture: &str) -> Rules {
    Rules { max_gpu: 8, allow_sharing: true, params: vec![("fixture".into(), fixture.into())], ..placement::testing::rules() }
}

fn misbehave(runtime: &PluginRuntime) -> Arc<LoadedPlugin> {
    runtime.get("policy-misbehave").expect("fixture loaded")
}

/// A policy made with the SDK reads what it is granted; what it is not is absent in the sandbox,
/// and the SDK's refusal names the grant that would allow it, in the call's failure.
#[test]
fn an_sdk_plugin_reads_what_it_is_granted_and_is_told_which_grant_would_allow_the_rest() {
    let data = tempfile::tempdir().expect("dir");
    std::fs::write(data.path().join("weights.csv"), "0,1\n").expect("file");
    let grants = PluginGrants { env: vec![("LAB_TOKEN".into(), "t0k".into())], read_only_dirs: vec![data.path().to_path_buf()], ..PluginGrants::default() };
    let granted = PluginSettings { grants, ..PluginSettings::default() };
    let (_bare_dir, bare) = runtime_with(&[("asks.wasm", ASKS)], HashMap::new());
    let (_dir, allowed) = runtime_with(&[("asks.wasm", ASKS)], HashMap::from([("policy-asks".to_string(), granted)]));
    let ask = |what: &str| Rules { params: vec![("ask".into(), what.into())], ..rules("") };
    let place = |runtime: &PluginRuntime, what: &str| runtime.get("policy-asks").expect("loaded").place(&jobs(1, 1), &gpus(1), &ask(what));
    let inside = format!("file:{}", data.path().join("weights.csv").display());
    for what in ["env:LAB_TOKEN", inside.as_str()] {
        assert_eq!(place(&allowed, what).expect("granted").len(), 1, "{what}");
    }
    let refused = place(&bare, "env:LAB_TOKEN").expect_err("not granted").to_string();
    assert!(refused.contains("env = { LAB_TOKEN = \"...\" } under [plugins.settings.policy-asks]"), "{refused}");
    let outside = place(&allowed, "file:/etc/hostname").expect_err("outside the granted directory").to_string();
    assert!(outside.contains("cannot read /etc/hostname") && outside.contains("read_only_dirs under [plugins.settings.policy-asks]"), "{outside}");
}

#[test]
fn bundled_plugins_are_active() {
    let (_dir, runtime) = runtime_with(&[], HashMap::new());
    let names: Vec<_> = runtime.list().into_iter().map(|r| (r.name, r.kind, r.state)).collect();
    assert_eq!(
        names,
        vec![
            ("parser-compete".to_string(), Some(PluginKind::Parser), "active"),
            ("policy-best-fit".to_string(), Some(PluginKind::Policy), "active"),
            ("policy-spread".to_string(), Some(PluginKind::Policy), "active"),
            ("provider-aliyun-ecs".to_string(), Some(PluginKind::Provider), "active"),
            ("provider-k8s".to_string(), Some(PluginKind::Provider), "active"),
            ("provider-runpod".to_string(), Some(PluginKind::Provider), "active"),
            ("provider-slurm".to_string(), Some(PluginKind::Provider), "active"),
            ("provider-tencent-tke".to_string(), Some(PluginKind::Provider), "active"),
        ]
    );
}

#[test]
fn endless_loop_is_stopped_at_its_deadline_and_healthy_plugins_still_answer() {
    let (_dir, runtime) = runtime_with(&[("misbehave.wasm", MISBEHAVE)], HashMap::new());
    let started = Instant::now();
    let err = misbehave(&runtime).place(&jobs(1, 1), &gpus(1), &rules("loop")).expect_err("must not return");
    let elapsed = started.elapsed();
    assert!(matches!(err, PluginError::Timeout { ref plugin, .. } if plugin == "policy-misbehave"), "{err}");
    // Not a timing assertion: a loop that was never interrupted would never have returned at all;
    // this only guards against a deadline misconfigured by orders of magnitude.
    assert!(elapsed < Duration::from_secs(30), "{elapsed:?}");

    let best_fit = runtime.get("policy-best-fit").expect("bundled");
    assert_eq!(best_fit.place(&jobs(1, 1), &gpus(1), &rules("")).expect("healthy"), vec![Placement { job: 0, gpus: vec![0] }]);
    // Quarantined for a moment, then the trapped instance is gone and a fresh one answers.
    assert!(matches!(misbehave(&runtime).place(&jobs(1, 1), &gpus(1), &rules("ok")), Err(PluginError::Quarantined { .. })));
    wait_for("the quarantine to end", || !misbehave(&runtime).quarantined());
    assert_eq!(misbehave(&runtime).place(&jobs(1, 1), &gpus(1), &rules("ok")).expect("fresh instance").len(), 1);
    assert_eq!(misbehave(&runtime).stats().failures.load(Ordering::Relaxed), 1, "a quarantined call is no failure");
}

#[test]
fn deadline_is_configurable_per_plugin() {
    let limits = PluginLimits { timeout: Duration::from_millis(10), ..PluginLimits::default() };
    let per_plugin = HashMap::from([("policy-misbehave".to_string(), PluginSettings { limits, grants: PluginGrants::default() })]);
    let (_dir, runtime) = runtime_with(&[("misbehave.wasm", MISBEHAVE)], per_plugin);
    match misbehave(&runtime).place(&jobs(1, 1), &gpus(1), &rules("loop")) {
        Err(PluginError::Timeout { limit, .. }) => assert_eq!(limit, Duration::from_millis(10)),
        other => panic!("expected a timeout, got {other:?}"),
    }
}

#[test]
fn allocation_past_the_cap_is_a_memory_limit_error() {
    // Time enough to reach the cap on a loaded machine: this is about memory, not the deadline.
    let limits = PluginLimits { timeout: Duration::from_secs(20), ..PluginLimits::default() };
    let per_plugin = HashMap::from([("policy-misbehave".to_string(), PluginSettings { limits, grants: PluginGrants::default() })]);
    let (_dir, runtime) = runtime_with(&[("misbehave.wasm", MISBEHAVE)], per_plugin);
    let err = misbehave(&runtime).place(&jobs(1, 1), &gpus(1), &rules("alloc")).expect_err("capped");
    assert!(matches!(err, PluginError::MemoryLimit { limit_mib: 64, .. }), "{err}");
    wait_for("the quarantine to end", || !misbehave(&runtime).quarantined());
    assert_eq!(misbehave(&runtime).place(&jobs(1, 1), &gpus(1), &rules("ok")).expect("recovers").len(), 1);
}

#[test]
fn a_trap_carries_the_plugins_panic_message() {
    let (_dir, runtime) = runtime_with(&[("misbehave.wasm", MISBEHAVE)], HashMap::new());
    let err = misbehave(&runtime).place(&jobs(1, 1), &gpus(1), &rules("trap")).expect_err("trapped");
    match err {
        PluginError::Trap { plugin, message } => {
            assert_eq!(plugin, "policy-misbehave");
            assert!(message.contains("fixture trap"), "{message}");
        }
        other => panic!("expected a trap, got {other}"),
    }
}

#[test]
fn a_component_for_another_wit_version_is_refused_with_both_versions() {
    let (_dir, runtime) = runtime_with(&[], HashMap::new());
    let err = runtime.check_file(Path::new(FUTURE)).expect_err("refused");
    let text = err.to_string();
    assert!(matches!(err, PluginError::IncompatibleVersion { .. }), "{text}");
    assert!(text.contains("gantry:plugin@9.0.0") && text.contains("gantry:plugin@0.5.0"), "{text}");
}

#[test]
fn a_refused_file_in_the_plugin_dir_is_listed_as_failed() {
    let (_dir, runtime) = runtime_with(&[("future.wasm", FUTURE)], HashMap::new());
    let row = runtime.list().into_iter().find(|r| r.source.ends_with("future.wasm")).expect("listed");
    assert_eq!(row.state, "failed");
    assert!(row.last_error.expect("error kept").contains("9.0.0"));
}

#[test]
fn not_a_component_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"\0asm garbage").expect("write");
    let (_d, runtime) = runtime_with(&[], HashMap::new());
    assert!(matches!(runtime.check_file(&junk), Err(PluginError::Compile { .. })));
}

#[test]
fn the_host_rejects_a_gpu_that_does_not_exist() {
    let (_dir, runtime) = runtime_with(&[("misbehave.wasm", MISBEHAVE)], HashMap::new());
    let service = PolicyService::new(runtime, "policy-misbehave");
    let outcome = service.place(&jobs(2, 1_000), &gpus(2), &rules("bad-index"));
    assert!(matches!(outcome.decider, Decider::Plugin { .. }));
    assert!(outcome.placements.is_empty());
    assert_eq!(outcome.rejected, vec![Rejection::UnknownGpu { job: 0, gpu: u32::MAX - 1 }]);
}

#[test]
fn the_host_rejects_placements_whose_memory_does_not_fit() {
    let (_dir, runtime) = runtime_with(&[("misbehave.wasm", MISBEHAVE)], HashMap::new());
    let service = PolicyService::new(runtime, "policy-misbehave");
    let outcome = service.place(&jobs(3, 10_000), &gpus(2), &rules("overbook"));
    assert_eq!(outcome.placements, vec![Placement { job: 0, gpus: vec![0] }, Placement { job: 1, gpus: vec![0] }]);
    assert_eq!(
        outcome.rejected,
        vec![Rejection::MemoryDoesNotFit { job: 2, gpu: 0, need_mib: 10_000, free_mib: 4_576 }]
    );
}

#[test]
fn a_failing_policy_falls_back_to_native_best_fit_and_is_quarantined() {
    let (_dir, runtime) = runtime_with(&[("misbehave.wasm", MISBEHAVE)], HashMap::new());
    let service = PolicyService::new(runtime.clone(), "policy-misbehave");
    let outcome = service.place(&jobs(1, 1_000), &gpus(1), &rules("error"));
    assert!(matches!(&outcome.decider, Decider::Fallback { reason } if reason.contains("fixture error")), "{:?}", outcome.decider);
    assert_eq!(outcome.placements, vec![Placement { job: 0, gpus: vec![0] }]);

    let again = service.place(&jobs(1, 1_000), &gpus(1), &rules("ok"));
    assert!(matches!(&again.decider, Decider::Fallback { reason } if reason.contains("quarantined")), "{:?}", again.decider);
    // The load's smoke check and the failing pass; the quarantined pass made no call.
    assert_eq!(misbehave(&runtime).stats().calls.load(Ordering::Relaxed), 2);
}

#[test]
fn a_missing_policy_falls_back() {
    let (_dir, runtime) = runtime_with(&[], HashMap::new());
    let outcome = PolicyService::new(runtime, "no-such-policy").place(&jobs(1, 1), &gpus(1), &rules(""));
    assert!(matches!(outcome.decider, Decider::Fallback { .. }));
    assert_eq!(outcome.placements.len(), 1);
}

#[test]
fn the_bundled_parser_round_trips_the_examples() {
    let (_dir, runtime) = runtime_with(&[], HashMap::new());
    let parser = runtime.get("parser-compete").expect("bundled");
    for name in ["command_gpu.txt", "command_gpus.txt"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../command").join(name);
        let text = std::fs::read_to_string(&path).expect("example");
        let file = parser.parse(name, None, &text).expect("call").expect("valid");
        assert!(!file.jobs.is_empty());
        let rendered = parser.render(&file).expect("render");
        assert_eq!(unlined(parser.parse(name, None, &rendered).expect("call").expect("valid")), unlined(file));
    }
    let diagnostics = parser.parse("command_gpu.txt", None, "1\npython a.py\n").expect("call").expect_err("invalid");
    assert_eq!(diagnostics[0].line, 1);
}

#[test]
fn policy_called_as_a_parser_is_a_kind_error() {
    let (_dir, runtime) = runtime_with(&[], HashMap::new());
    let err = runtime.get("policy-spread").expect("bundled").parse("x", None, "").expect_err("wrong kind");
    assert!(matches!(err, PluginError::WrongKind { wanted: "parser", actual: "policy", .. }));
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    // Generous: this asserts that reload happens, not how fast; the benchmark measures speed.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn fixture_version(runtime: &PluginRuntime) -> Option<String> {
    runtime.get("policy-fixture").map(|p| p.info.version.clone())
}

#[test]
fn hot_reload_swaps_versions_keeps_the_old_on_failure_and_forgets_removed_files() {
    let (dir, runtime) = runtime_with(&[("fixture.wasm", FIXTURE_V1)], HashMap::new());
    let _watcher = runtime.watch().expect("watching").expect("a plugin dir is configured");
    let file = dir.path().join("plugins/fixture.wasm");
    let v1 = runtime.get("policy-fixture").expect("v1 loaded at start");
    assert_eq!(v1.info.version, "1.0.0");

    std::fs::write(&file, std::fs::read(FIXTURE_V2).expect("v2")).expect("replace");
    wait_for("version 2", || fixture_version(&runtime).as_deref() == Some("2.0.0"));
    // v2 spreads: of a nearly full GPU 0 and an empty GPU 1 it picks GPU 1; v1 (best fit) GPU 0.
    let mut two = gpus(2);
    two[0].memory_used_mib = 20_000;
    let v2 = runtime.get("policy-fixture").expect("v2");
    assert_eq!(v2.place(&jobs(1, 1_000), &two, &rules("")).expect("v2 places"), vec![Placement { job: 0, gpus: vec![1] }]);
    // A call holding the old version still completes on it.
    assert_eq!(v1.place(&jobs(1, 1_000), &two, &rules("")).expect("v1 places"), vec![Placement { job: 0, gpus: vec![0] }]);

    std::fs::write(&file, b"\0asm\x0d\0\x01\0 truncated").expect("break it");
    wait_for("the failure to be recorded", || {
        runtime.list().iter().any(|r| r.name == "policy-fixture" && r.last_error.is_some())
    });
    assert_eq!(fixture_version(&runtime).as_deref(), Some("2.0.0"), "the broken file must not replace v2");

    std::fs::remove_file(&file).expect("remove");
    wait_for("removal", || runtime.get("policy-fixture").is_none());
}

#[test]
fn identical_rewrites_do_not_reload() {
    let (dir, runtime) = runtime_with(&[("fixture.wasm", FIXTURE_V1)], HashMap::new());
    let before = runtime.get("policy-fixture").expect("loaded");
    runtime.reload_path(&dir.path().join("plugins/fixture.wasm"));
    let after = runtime.get("policy-fixture").expect("loaded");
    assert!(Arc::ptr_eq(&before, &after));
}

mod provider {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// A one-request HTTP server on loopback that answers `body`.
    fn serve_once(body: &'static str) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        std::thread::spawn(move || {
            if let Ok((mut conn, _)) = listener.accept() {
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf);
                let _ = write!(conn, "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
            }
        });
        format!("http://{addr}")
    }

    fn job(url: &str) -> JobConfig {
        JobConfig {
            name: "train".into(),
            key: "gantry-test-1-1".into(),
            user: "nobody".into(),
            working_dir: "/tmp".into(),
            image: String::new(),
            command: vec!["python".into(), "train.py".into()],
            gpu: GpuSpec { gpu_type: "A100-80G".into(), count: 2, memory_gib: 80 },
            cpus: 8,
            ram_gib: 64,
            env: vec![("URL".into(), url.into())],
            timeout_s: Some(7200),
            region: None,
        }
    }

    /// Loading is blocking work: async callers (these tests, the daemon) do it on a blocking thread.
    async fn runtime_allowing(base: &str) -> (tempfile::TempDir, Arc<PluginRuntime>) {
        let base = base.to_string();
        tokio::task::spawn_blocking(move || load_allowing(&base)).await.expect("loads")
    }

    fn load_allowing(base: &str) -> (tempfile::TempDir, Arc<PluginRuntime>) {
        let settings = PluginSettings {
            limits: PluginLimits { timeout: Duration::from_secs(10), ..PluginLimits::default() },
            grants: PluginGrants { http_base_urls: vec![base.to_string()], ..PluginGrants::default() },
        };
        runtime_with(&[("echo.wasm", env!("GANTRY_WASM_PROVIDER_ECHO"))], HashMap::from([("provider-echo".to_string(), settings)]))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_provider_reaches_its_configured_base_url() {
        let base = serve_once("job-42");
        let (_dir, runtime) = runtime_allowing(&format!("{base}/api")).await;
        let echo = runtime.get("provider-echo").expect("loaded");
        assert_eq!(echo.info.kind, PluginKind::Provider);
        match echo.provider(ProviderCall::Submit(job(&format!("{base}/api/jobs")))).await.expect("call") {
            ProviderReply::Job(Ok(result)) => {
                assert_eq!(result.provider_job_id, "job-42");
                assert_eq!(result.state, JobState::Pending);
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_provider_cannot_reach_anything_else() {
        let base = serve_once("secret");
        let (_dir, runtime) = runtime_allowing(&format!("{base}/api")).await;
        let echo = runtime.get("provider-echo").expect("loaded");
        for url in [format!("{base}/admin"), "http://127.0.0.2:9/api/jobs".to_string()] {
            match echo.provider(ProviderCall::Submit(job(&url))).await.expect("call") {
                ProviderReply::Job(Err(ProviderError::Transport(e))) => {
                    assert!(e.contains("HttpRequestDenied"), "{e}");
                    assert!(e.contains(&format!("the host refused its request to {url}: it is not under [plugins.settings.provider-echo] http_base_urls")), "{e}");
                }
                other => panic!("{url}: {other:?}"),
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_other_provider_calls_answer() {
        let (_dir, runtime) = runtime_allowing("http://127.0.0.1:1/").await;
        let echo = runtime.get("provider-echo").expect("loaded");
        match echo.provider(ProviderCall::EstimateCost(job("unused"))).await.expect("call") {
            ProviderReply::Cost(Ok(c)) => assert_eq!((c.per_hour, c.total), (5.0, 10.0)),
            other => panic!("{other:?}"),
        }
        match echo.provider(ProviderCall::Logs { id: "j1".into(), tail_lines: 3 }).await.expect("call") {
            ProviderReply::Logs(Ok(text)) => assert_eq!(text, "j1: last 3 lines"),
            other => panic!("{other:?}"),
        }
        let policy = runtime.get("policy-spread").expect("bundled");
        assert!(matches!(policy.provider(ProviderCall::Status("x".into())).await, Err(PluginError::WrongKind { .. })));
    }
}

#[test]
fn a_version_renamed_into_place_is_loaded_once() {
    let (dir, runtime) = runtime_with(&[("fixture.wasm", FIXTURE_V1)], HashMap::new());
    let _watcher = runtime.watch().expect("watching").expect("a plugin dir is configured");
    let plugins = dir.path().join("plugins");
    // How editors and `cp --atomic`-style tools replace a file: write aside, rename over.
    let staged = plugins.join(".fixture.wasm.partial");
    std::fs::write(&staged, std::fs::read(FIXTURE_V2).expect("v2")).expect("stage");
    std::fs::rename(&staged, plugins.join("fixture.wasm")).expect("rename");
    wait_for("version 2", || fixture_version(&runtime).as_deref() == Some("2.0.0"));
    let loaded = runtime.get("policy-fixture").expect("v2");
    // The rename's two events and any late ones must not load it again. The watcher handles
    // events in order, so once a file written after the rename is loaded, they all were seen.
    std::fs::write(plugins.join("later.wasm"), std::fs::read(MISBEHAVE).expect("fixture")).expect("a later file");
    wait_for("the later file", || runtime.get("policy-misbehave").is_some());
    assert!(Arc::ptr_eq(&loaded, &runtime.get("policy-fixture").expect("still v2")));
    assert!(runtime.list().iter().all(|r| !r.source.contains(".partial")), "the staging name is not a plugin");
}
