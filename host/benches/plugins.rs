//! Plugin runtime costs: compiling vs loading a cached component, one `place()` call through the
//! wasm boundary against the same best fit compiled natively, hot-reload latency, and what the
//! host adds to a provider call.
//!
//! `cargo bench -p gantry --bench plugins`; results go to docs/BENCHMARKS.md. Policies built from
//! other languages (`gantry plugin build` of a Python or JavaScript project) are measured beside
//! the bundled ones when `GANTRY_BENCH_POLICIES` lists their components, separated by commas.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use gantry::plugin::{GpuSpec, JobConfig, PluginEngine, PluginGrants, PluginLimits, PluginRuntime, PluginSettings, ProviderCall, ProviderReply, RuntimeOptions, Wasm};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use placement::{GpuState, PendingJob, Rules};
use std::time::{Duration, Instant};

const SHIPPED: &[(&str, &str)] = &[
    ("parser-compete", env!("GANTRY_WASM_PARSER_COMPETE")),
    ("policy-best-fit", env!("GANTRY_WASM_POLICY_BEST_FIT")),
    ("policy-spread", env!("GANTRY_WASM_POLICY_SPREAD")),
];

fn load(c: &mut Criterion) {
    let mut group = c.benchmark_group("load");
    group.sample_size(20);
    let uncached = PluginEngine::new(None).expect("engine");
    let cache = tempfile::tempdir().expect("cache dir");
    let cached = PluginEngine::new(Some(cache.path().to_path_buf())).expect("engine");
    for (name, path) in SHIPPED {
        let bytes = std::fs::read(path).expect("built by build.rs");
        group.bench_function(BenchmarkId::new("compile", name), |b| b.iter(|| uncached.compile(name, &Wasm::new(&bytes)).expect("compiles")));
        cached.compile(name, &Wasm::new(&bytes)).expect("warm the cache");
        group.bench_function(BenchmarkId::new("cached", name), |b| b.iter(|| cached.compile(name, &Wasm::new(&bytes)).expect("loads")));
    }
    group.finish();
}

fn input(jobs: u64, gpus: u32) -> (Vec<PendingJob>, Vec<GpuState>, Rules) {
    let pending = (0..jobs)
        .map(|id| PendingJob {
            id,
            queue: id % 32,
            min_gpus: 1 + (id % 4 == 0) as u32,
            max_gpus: 1 + (id % 4 == 0) as u32,
            memory_mib: 1_000 + (id * 397) % 20_000,
            priority: (id % 3) as i32,
            attempts: 0,
            submitted_ms: 1_700_000_000_000 + id,
            labels: None,
            owner: None,
            owner_usage: 0.0,
        })
        .collect();
    let gpus = (0..gpus)
        .map(|index| GpuState {
            index,
            uuid: format!("GPU-{index:08x}-0000-0000-0000-000000000000"),
            name: "NVIDIA H100 80GB HBM3".into(),
            memory_total_mib: 81_559,
            memory_used_mib: u64::from(index % 5) * 7_000,
            memory_peak_mib: u64::from(index % 5) * 7_500,
            utilization_mean: (index * 13 % 100) as u8,
            temperature_c: Some(40 + index % 30),
            power_mw: Some(120_000),
            memory_reserved_mib: 0,
            gantry_jobs: index % 3,
            foreign_processes: index % 2,
            eligible: true,
        })
        .collect();
    let rules = Rules {
        gpu_left: 0,
        min_gpu: 1,
        max_gpu: 8,
        memory_margin_mib: 512,
        allow_sharing: true,
        memory_save_mode: false,
        params: vec![],
    };
    (pending, gpus, rules)
}

fn place(c: &mut Criterion) {
    let cache = tempfile::tempdir().expect("cache dir");
    let runtime = PluginRuntime::new(RuntimeOptions { cache_dir: Some(cache.path().to_path_buf()), ..Default::default() })
        .expect("runtime");
    let plugin = runtime.get("policy-best-fit").expect("bundled");
    let dir = tempfile::tempdir().expect("dir");
    std::fs::copy(env!("GANTRY_WASM_POLICY_MISBEHAVE"), dir.path().join("m.wasm")).expect("copy");
    let fixtures = PluginRuntime::new(RuntimeOptions {
        plugin_dir: Some(dir.path().to_path_buf()),
        cache_dir: Some(cache.path().to_path_buf()),
        ..Default::default()
    })
    .expect("runtime");
    // Answers at once without placing: what is left is the cost of crossing with this input.
    let crossing = fixtures.get("policy-misbehave").expect("fixture");
    let mut group = c.benchmark_group("place");
    for (jobs, gpus) in [(8, 8), (64, 8), (1000, 64)] {
        let (pending, gpus_in, rules) = input(jobs, gpus);
        let label = format!("{jobs}x{gpus}");
        group.bench_function(BenchmarkId::new("wasm", &label), |b| {
            b.iter(|| plugin.place(&pending, &gpus_in, &rules).expect("places"))
        });
        let mut nothing = rules.clone();
        nothing.params = vec![("fixture".into(), "none".into())];
        group.bench_function(BenchmarkId::new("crossing-only", &label), |b| {
            b.iter(|| assert!(crossing.place(&pending, &gpus_in, &nothing).expect("answers").is_empty()))
        });
        group.bench_function(BenchmarkId::new("native", &label), |b| {
            b.iter(|| gantry::policy::native(&pending, &gpus_in, &rules))
        });
    }
    group.finish();

    // What the crossing is made of: the call alone, then the jobs, then the GPUs with and
    // without their two strings (each string and list is a call into the guest's allocator).
    let mut parts = c.benchmark_group("crossing_parts");
    let (pending, gpus_in, rules) = input(64, 8);
    let mut nothing = rules.clone();
    nothing.params = vec![("fixture".into(), "none".into())];
    let unnamed: Vec<GpuState> = gpus_in.iter().map(|g| GpuState { uuid: String::new(), name: String::new(), ..g.clone() }).collect();
    for (label, jobs, gpus) in [("call", &pending[..0], &gpus_in[..0]), ("64_jobs", &pending[..], &gpus_in[..0]), ("8_gpus", &pending[..0], &gpus_in[..]), ("8_gpus_no_strings", &pending[..0], &unnamed[..])] {
        parts.bench_function(label, |b| b.iter(|| assert!(crossing.place(jobs, gpus, &nothing).expect("answers").is_empty())));
    }
    parts.finish();
}

/// From the write of a new version to the first call answered by it: with the artifact cache warm
/// (a version seen before, as when a file is restored) and cold (a new build, which compiles).
fn hot_reload(c: &mut Criterion) {
    let versions = [
        std::fs::read(env!("GANTRY_WASM_POLICY_FIXTURE_V1")).expect("v1"),
        std::fs::read(env!("GANTRY_WASM_POLICY_FIXTURE_V2")).expect("v2"),
    ];
    let (pending, gpus, rules) = input(8, 8);
    let mut group = c.benchmark_group("hot_reload");
    group.sample_size(20);
    for cached in [true, false] {
        let dir = tempfile::tempdir().expect("dir");
        let plugins = dir.path().join("plugins");
        std::fs::create_dir_all(&plugins).expect("plugin dir");
        let file = plugins.join("fixture.wasm");
        std::fs::write(&file, &versions[0]).expect("v1");
        let runtime = PluginRuntime::new(RuntimeOptions {
            plugin_dir: Some(plugins),
            cache_dir: cached.then(|| dir.path().join("cache")),
            ..Default::default()
        })
        .expect("runtime");
        let _watcher = runtime.watch().expect("watch");
        let name = if cached { "write_to_first_call/cached" } else { "write_to_first_call/compiling" };
        group.bench_function(name, |b| {
            let mut next = 1;
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let want = if next == 1 { "2.0.0" } else { "1.0.0" };
                    let started = Instant::now();
                    std::fs::write(&file, &versions[next]).expect("write");
                    loop {
                        if let Some(p) = runtime.get("policy-fixture")
                            && p.info.version == want {
                                p.place(&pending, &gpus, &rules).expect("places");
                                break;
                            }
                        // Coarse polling: a busy poller would take a core from the compiler.
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    total += started.elapsed();
                    next = 1 - next;
                }
                total
            })
        });
    }
    group.finish();
}

/// A loopback HTTP server that answers every request `200 job-1` and closes, as the fixture
/// provider's submit expects.
fn answering_server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\njob-1");
        }
    });
    addr
}

/// One provider call as the daemon makes each (a store and instance made for the call from the
/// pre-instantiated component, the call, the checks on its answer): `status`, which the fixture
/// answers without the network, and `submit`, one `wasi:http` GET to a loopback server, beside
/// the same GET sent natively over a fresh connection.
fn provider_call(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("dir");
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).expect("plugin dir");
    std::fs::copy(env!("GANTRY_WASM_PROVIDER_ECHO"), plugins.join("echo.wasm")).expect("fixture");
    let addr = answering_server();
    let base = format!("http://{addr}/api");
    let settings = PluginSettings {
        limits: PluginLimits { timeout: Duration::from_secs(10), ..PluginLimits::default() },
        grants: PluginGrants { http_base_urls: vec![base.clone()], ..PluginGrants::default() },
    };
    let runtime = PluginRuntime::new(RuntimeOptions {
        plugin_dir: Some(plugins),
        cache_dir: Some(dir.path().join("cache")),
        per_plugin: HashMap::from([("provider-echo".to_string(), settings.clone())]),
        ..Default::default()
    })
    .expect("runtime");
    let echo = runtime.get("provider-echo").expect("loaded");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio");
    let job = JobConfig {
        name: "bench".into(),
        key: "gantry-bench-1-1".into(),
        user: "root".into(),
        working_dir: String::new(),
        image: String::new(),
        command: vec!["true".into()],
        gpu: GpuSpec { gpu_type: String::new(), count: 1, memory_gib: 1 },
        cpus: 0,
        ram_gib: 0,
        env: vec![("URL".into(), format!("{base}/jobs"))],
        timeout_s: None,
        region: None,
    };
    let mut group = c.benchmark_group("provider_call");
    group.bench_function("status", |b| {
        b.iter(|| match rt.block_on(echo.provider_with(ProviderCall::Status("job-1".into()), &settings)) {
            Ok(ProviderReply::Job(Ok(_))) => {}
            other => panic!("{other:?}"),
        })
    });
    group.bench_function("submit_over_wasi_http", |b| {
        b.iter(|| match rt.block_on(echo.provider_with(ProviderCall::Submit(job.clone()), &settings)) {
            Ok(ProviderReply::Job(Ok(result))) => assert_eq!(result.provider_job_id, "job-1"),
            other => panic!("{other:?}"),
        })
    });
    group.bench_function("native_http_get", |b| {
        b.iter(|| {
            let mut stream = TcpStream::connect(addr).expect("connect");
            stream.write_all(format!("GET /api/jobs HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes()).expect("send");
            let mut answer = Vec::new();
            stream.read_to_end(&mut answer).expect("answer");
            assert!(answer.ends_with(b"job-1"));
        })
    });
    group.finish();
}

/// The components `GANTRY_BENCH_POLICIES` names: their compile, cached load and `place()`, with
/// the input of [`place`].
fn other_languages(c: &mut Criterion) {
    let Ok(list) = std::env::var("GANTRY_BENCH_POLICIES") else {
        eprintln!("other_languages: GANTRY_BENCH_POLICIES names no components; nothing measured");
        return;
    };
    let cache = tempfile::tempdir().expect("cache dir");
    let engine = PluginEngine::new(None).expect("engine");
    let runtime = PluginRuntime::new(RuntimeOptions { cache_dir: Some(cache.path().to_path_buf()), ..Default::default() }).expect("runtime");
    for path in list.split(',').filter(|p| !p.is_empty()) {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let mut load = c.benchmark_group("other_languages_load");
        load.sample_size(10);
        let info = runtime.add_file(std::path::Path::new(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
        let name = info.name.clone();
        load.bench_function(BenchmarkId::new("compile", &name), |b| b.iter(|| engine.compile(&name, &Wasm::new(&bytes)).expect("compiles")));
        load.bench_function(BenchmarkId::new("cached", &name), |b| b.iter(|| runtime.add_file(std::path::Path::new(path)).expect("loads")));
        load.finish();
        let plugin = runtime.get(&name).expect("added");
        let mut group = c.benchmark_group("other_languages_place");
        for (jobs, gpus) in [(8, 8), (64, 8)] {
            let (pending, gpus_in, rules) = input(jobs, gpus);
            group.bench_function(BenchmarkId::new(&name, format!("{jobs}x{gpus}")), |b| b.iter(|| plugin.place(&pending, &gpus_in, &rules).expect("places")));
        }
        group.finish();
    }
}

criterion_group!(benches, load, place, hot_reload, provider_call, other_languages);
criterion_main!(benches);
