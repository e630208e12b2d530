//! The engine as the binary runs it: `wsgi-agent engine-trace` against
//! charms.reactive 1.5.3 itself (differential), and the state store under
//! SIGKILL at random moments.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

const AGENT: &str = env!("CARGO_BIN_EXE_wsgi-agent");

/// A tool from scripts/lib/install-deps; missing fails the test (it runs
/// only with the `differential` feature, which says the tools are there).
fn tool(var: &str) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .filter(|p| p.exists())
        .unwrap_or_else(|| {
            panic!("{var} is not set or missing: run eval \"$(scripts/lib/install-deps)\"")
        })
}

/// proptest's seeded generator, so failures reproduce.
struct Rng(proptest::test_runner::TestRng);
impl Rng {
    fn seeded(seed: u64) -> Rng {
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&seed.to_le_bytes());
        Rng(proptest::test_runner::TestRng::from_seed(
            proptest::test_runner::RngAlgorithm::ChaCha,
            &bytes,
        ))
    }
    fn next(&mut self) -> u64 {
        use proptest::prelude::Rng as _;
        self.0.next_u64()
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn flags(&mut self, max: u64) -> Vec<String> {
        let names = ["a", "b", "c", "d", "e", "f"];
        (0..self.below(max + 1))
            .map(|_| names[self.below(6) as usize].to_owned())
            .collect()
    }
}

fn generated(seed: u64, count: usize) -> Vec<Value> {
    let mut rng = Rng::seeded(seed);
    let hooks = [
        "install",
        "config-changed",
        "db-relation-joined",
        "update-status",
    ];
    (0..count)
        .map(|_| {
            let handlers: Vec<Value> = (0..rng.below(7))
                .map(|i| {
                    let mut h = json!({"name": format!("h{i}"), "set": rng.flags(2), "clear": rng.flags(2)});
                    if rng.below(6) == 0 {
                        let pat = ["{install,config-changed}", "db-relation-{joined,changed}", "install"];
                        h["hooks"] = json!([pat[rng.below(3) as usize]]);
                    } else {
                        for k in ["when_all", "when_any", "when_not", "when_not_all"] {
                            h[k] = json!(rng.flags(2));
                        }
                    }
                    h
                })
                .collect();
            let triggers: Vec<Value> = (0..rng.below(3))
                .map(|_| {
                    let key = if rng.below(2) == 0 { "when" } else { "when_not" };
                    let f = rng.flags(1).pop().unwrap_or_else(|| "a".into());
                    json!({key: f, "set": rng.flags(1), "clear": rng.flags(1)})
                })
                .collect();
            json!({"hook": hooks[rng.below(4) as usize], "flags": rng.flags(3),
                   "handlers": handlers, "triggers": triggers})
        })
        .collect()
}

/// Hand-written specs, one or more per dispatch rule.
fn rules() -> Vec<Value> {
    let h = |name: &str, cond: Value, set: &[&str], clear: &[&str]| {
        let mut v = json!({"name": name, "set": set, "clear": clear});
        v.as_object_mut()
            .unwrap()
            .extend(cond.as_object().unwrap().clone());
        v
    };
    vec![
        // the example of the issue
        json!({"hook": "config-changed", "flags": ["a"],
               "handlers": [h("h1", json!({"hooks": ["config-changed"]}), &["b"], &[]),
                            h("h2", json!({"when_all": ["a"], "when_not": ["c"]}), &["c"], &["a"])],
               "triggers": [{"when": "c", "set": ["d"], "clear": []}, {"when_not": "a", "set": [], "clear": ["b"]}]}),
        // a set takes effect next pass
        json!({"hook": "install", "handlers": [
            h("b", json!({"when_all": ["x"]}), &[], &[]), h("a", json!({}), &["x"], &[]),
            h("c", json!({"when_not": ["x"]}), &[], &[])]}),
        // a clear removes queued handlers now
        json!({"hook": "install", "flags": ["go"], "handlers": [
            h("first", json!({"when_all": ["go"]}), &[], &["go"]),
            h("second", json!({"when_all": ["go"]}), &[], &[])]}),
        // clearing an unset flag re-tests, no event
        json!({"hook": "install", "handlers": [
            h("first", json!({}), &[], &["never"]), h("second", json!({"when_not": ["never"]}), &[], &[])]}),
        // re-run only on watched changes
        json!({"hook": "update-status", "flags": ["ready"], "handlers": [
            h("steady", json!({"when_all": ["ready"]}), &[], &[]),
            h("toggler", json!({"when_not": ["done"]}), &["done"], &[]),
            h("watcher", json!({"when_any": ["ready", "done"]}), &[], &[])]}),
        // hook patterns run once, only for their hook
        json!({"hook": "mongo-relation-changed", "handlers": [
            h("db", json!({"hooks": ["{postgres,mongo}-relation-{joined,changed}"]}), &["seen"], &[]),
            h("other", json!({"hooks": ["website-relation-changed"]}), &["no"], &[]),
            h("after", json!({"when_all": ["seen"]}), &[], &[])]}),
        // triggers fire on transitions only
        json!({"hook": "config-changed", "flags": ["t", "u"], "handlers": [
            h("set-again", json!({}), &["t"], &[]), h("clear-u", json!({}), &[], &["u"])],
            "triggers": [{"when": "t", "set": ["from-t"]}, {"when_not": "u", "set": ["from-u"], "clear": ["t"]}]}),
        // chained triggers, merged lists
        json!({"hook": "install", "handlers": [h("s", json!({}), &["a"], &[])],
            "triggers": [{"when": "a", "set": ["b"]}, {"when": "a", "set": ["c"], "clear": ["b"]},
                         {"when": "c", "set": ["d"]}]}),
        // when_not_all
        json!({"hook": "install", "flags": ["p"], "handlers": [
            h("na", json!({"when_not_all": ["p", "q"]}), &["q"], &[]),
            h("after", json!({"when_not_all": ["p", "q"]}), &[], &[])]}),
    ]
}

fn run_rust(spec: &Value, dir: &Path, n: usize) -> Value {
    let path = dir.join(format!("spec-{n}.json"));
    std::fs::write(&path, spec.to_string()).unwrap();
    let out = Command::new(AGENT)
        .arg("engine-trace")
        .arg(&path)
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("engine-trace printed no JSON ({e}): {out:?}"))
}

#[test]
#[cfg_attr(
    not(feature = "differential"),
    ignore = "needs charms.reactive 1.5.3 (scripts/lib/install-deps), then --features differential"
)]
fn engine_trace_agrees_with_charms_reactive() {
    let python = tool("WSGI_TEST_REACTIVE_PYTHON");
    let dir = tempfile::tempdir().unwrap();
    let mut specs = rules();
    let hand_written = specs.len();
    specs.extend(generated(0x5eed_c0ffee, 400));
    let all = dir.path().join("specs.json");
    std::fs::write(&all, Value::from(specs.clone()).to_string()).unwrap();
    let runner =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/differential_py/run_reactive.py");
    let out = Command::new(python)
        .arg(runner)
        .arg(&all)
        .stderr(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "charms.reactive runner failed: {out:?}"
    );
    let python: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(python.len(), specs.len());

    let (mut agreed, mut capped) = (0, 0);
    for (n, (spec, py)) in specs.iter().zip(&python).enumerate() {
        let rust = run_rust(spec, dir.path(), n);
        if py.get("capped").is_some() {
            // charms.reactive stops silently at 100 iterations; the engine
            // must report that loop as an error.
            capped += 1;
            assert!(
                rust.get("error").is_some(),
                "spec {n} loops in charms.reactive, not here: {spec}"
            );
            continue;
        }
        assert_eq!(&rust, py, "spec {n} differs: {spec}");
        agreed += 1;
    }
    eprintln!(
        "differential: {agreed} specs agree ({hand_written} hand-written), {capped} loop in both"
    );
    assert!(
        agreed >= 300 + hand_written - capped.min(100),
        "too few settling specs: {agreed}"
    );
}

/// Specs whose flag sets differ, so each committed state is recognisable.
fn versioned_flags(v: usize) -> Vec<String> {
    // Enough flags to make the file tens of kB: a write is not one syscall.
    (0..1000).map(|k| format!("v{v:04}-flag-{k:04}")).collect()
}

fn flag_set(path: &Path) -> BTreeSet<String> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return BTreeSet::new();
    };
    let parsed: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("state file corrupt: {e}\n{}", &text[..text.len().min(200)]));
    parsed["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn sigkill_during_commit_never_leaves_a_partial_state_file() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let spec_path = dir.path().join("spec.json");
    let mut rng = Rng::seeded(0xdead_beef);
    let (mut kills, mut whole_after_kill, mut runs) = (0, 0, 0);
    // The time a whole run takes, re-measured as the file grows: kills are
    // spread over it so that they land before, during and after the commit.
    let mut window = Duration::from_millis(5);
    let mut v = 0;
    while kills < 200 {
        v += 1;
        if v % 10 == 0 {
            // Keep the file from growing without bound.
            std::fs::remove_file(&state).ok();
        }
        let before = flag_set(&state);
        let spec = json!({"hook": "config-changed",
                          "handlers": [{"name": "h", "set": versioned_flags(v), "clear": []}]});
        std::fs::write(&spec_path, spec.to_string()).unwrap();
        let mut after_ok = before.clone();
        after_ok.extend(versioned_flags(v));

        let t0 = std::time::Instant::now();
        let mut child = Command::new(AGENT)
            .args(["engine-trace", "--state"])
            .arg(&state)
            .arg(&spec_path)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        runs += 1;
        let measure = rng.below(4) == 0;
        if measure {
            assert!(child.wait().unwrap().success());
            window = t0.elapsed();
        } else {
            let pause = rng.below(window.as_micros() as u64 * 6 / 5);
            std::thread::sleep(Duration::from_micros(pause));
            if child.try_wait().unwrap().is_none() {
                child.kill().unwrap(); // SIGKILL
                kills += 1;
            }
            child.wait().unwrap();
        }
        let after = flag_set(&state);
        if after == after_ok {
            whole_after_kill += usize::from(!measure);
        } else {
            assert_eq!(
                after, before,
                "run {v}: the file is neither the old nor the new state"
            );
        }
    }
    eprintln!(
        "{kills} SIGKILLs in {runs} runs (window {window:?}); {whole_after_kill} killed-or-raced runs left the new state whole, the rest the old one"
    );
    assert!(
        whole_after_kill > 10,
        "the kills never let a commit through: the window is too early"
    );
}
