//! The data owner's commands end to end (`keygen`, `encrypt`, `decrypt`, `eval`) and
//! every file error they can meet: a wrong key, a plan mismatch, a truncated or
//! bit-flipped file, a file that is not ours. Each must exit 1 with a message naming
//! the file, never panic.
//!
//! Shapes are tiny (d = 4, k = 2) so that encryption is instant; one real `keygen` is
//! shared by the whole flow (≈ 10 s, 540 MiB of server keys in a scratch directory).

use blindtuner_runtime::clear::init_tensors;
use blindtuner_runtime::tfhe::files::{self, FileErrorKind, PlanHash};
use blindtuner_runtime::tfhe::{ClientKey, CryptoRng, ParamSet};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bt(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_blindtuner"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("run blindtuner")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Run and require success.
fn ok(dir: &Path, args: &[&str]) -> String {
    let o = bt(dir, args);
    assert_eq!(o.status.code(), Some(0), "{args:?} failed:\n{}", text(&o.stderr));
    text(&o.stdout)
}

/// Run and require a user error (exit 1, no panic) whose message contains every needle.
fn fails(dir: &Path, args: &[&str], needles: &[&str]) -> String {
    let o = bt(dir, args);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{args:?} must exit 1; stderr:\n{err}");
    assert!(!err.contains("panicked"), "{args:?} panicked:\n{err}");
    assert!(err.starts_with("error: "), "{args:?}: one clear error line, got:\n{err}");
    for n in needles {
        assert!(err.contains(n), "{args:?}: message should contain `{n}`:\n{err}");
    }
    err
}

struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let d = std::env::temp_dir().join(format!("blindtuner-files-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("scratch dir");
        Scratch(d)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The bundled sigmoid head, shrunk to d = 4, k = 2 and one epoch.
fn tiny_spec(d: usize) -> String {
    let src = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/mnist_vit_sigmoid.bt"))
        .expect("bundled model");
    src.replace("dim d = 64", &format!("dim d = {d}"))
        .replace("dim k = 5", "dim k = 2")
        .replace("epochs    = 40", "epochs    = 1")
}

/// `n` separable samples `label,f0..f3` (class 1 around +1, class 0 around -1).
fn tiny_csv(n: usize, d: usize) -> String {
    let mut s = String::from("label");
    for j in 0..d {
        s += &format!(",f{j}");
    }
    s.push('\n');
    for i in 0..n {
        let y = i % 2;
        let sign = if y == 1 { 1.0 } else { -1.0 };
        s += &y.to_string();
        for j in 0..d {
            // Deterministic spread in [-0.5, 0.5) around ±1.
            let jitter = ((i * 7 + j * 3) % 10) as f64 / 10.0 - 0.5;
            s += &format!(",{:.3}", sign + jitter);
        }
        s.push('\n');
    }
    s
}

fn setup(dir: &Path) {
    std::fs::write(dir.join("tiny.bt"), tiny_spec(4)).expect("write spec");
    std::fs::write(dir.join("other.bt"), tiny_spec(5)).expect("write spec");
    std::fs::write(dir.join("tiny.csv"), tiny_csv(8, 4)).expect("write csv");
    ok(dir, &["compile", "tiny.bt", "--emit", "plan", "-o", "plan.json"]);
    ok(dir, &["compile", "other.bt", "--emit", "plan", "-o", "other.json"]);
}

fn read_plan(path: &Path) -> blindtuner_compiler::plan::Plan {
    serde_json::from_str(&std::fs::read_to_string(path).expect("plan")).expect("plan json")
}

/// An encrypted model as `train` would write it, made here with the runtime API from
/// the plan's initial tensors: the decrypt/eval path does not depend on `train`.
fn write_initial_model(dir: &Path, keys: &Path, plan_file: &str, out: &str) {
    let plan = read_plan(&dir.join(plan_file));
    let ck = files::load_client_key(&keys.join("client.key")).expect("client key");
    let mut rng = CryptoRng::from_seed(11);
    let model = ck.encrypt_model(&plan, &init_tensors(&plan), &mut rng).expect("encrypt model");
    files::save_model(&dir.join(out), ck.params().id(), ck.fingerprint(), PlanHash::of(&plan), &model)
        .expect("save model");
}

fn write_with(dir: &Path, name: &str, from: &str, edit: impl FnOnce(&mut Vec<u8>)) {
    let mut bytes = std::fs::read(dir.join(from)).expect("read");
    edit(&mut bytes);
    std::fs::write(dir.join(name), bytes).expect("write");
}

#[test]
fn data_owner_flow_and_every_file_error() {
    let s = Scratch::new("flow");
    let dir = s.0.as_path();
    setup(dir);

    // keygen for the plan (its bootstrap key is the compiler's choice): both files, the
    // client key owner-only, sizes as the report predicts.
    let out = ok(dir, &["keygen", "--out", "keys", "--plan", "plan.json", "--insecure-seed", "1"]);
    for needle in ["bt128-", "fingerprint", "client.key", "server.keys", "SECRET"] {
        assert!(out.contains(needle), "keygen output lacks `{needle}`:\n{out}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("keys/client.key")).expect("client key").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "client key must be owner-only");
    }
    let report: Value = serde_json::from_str(&ok(dir, &["report", "tiny.bt", "--format", "json"])).expect("json");
    let res = &report["resources"];
    let predicted = res["server_keys_bytes"].as_u64().expect("server_keys_bytes");
    let actual = std::fs::metadata(dir.join("keys/server.keys")).expect("server keys").len();
    assert!(actual.abs_diff(predicted) * 1000 < predicted, "server keys {actual} B, report predicts {predicted} B");
    let ck_pred = res["client_key_bytes"].as_u64().expect("client_key_bytes");
    let ck_actual = std::fs::metadata(dir.join("keys/client.key")).expect("client key").len();
    assert!(ck_actual.abs_diff(ck_pred) * 50 < ck_pred, "client key {ck_actual} B, report predicts {ck_pred} B");
    fails(dir, &["keygen", "--out", "keys"], &["keys/client.key", "already exists", "refusing to overwrite"]);

    // encrypt: 8 samples; the header carries key fingerprint and plan hash.
    let out =
        ok(dir, &["encrypt", "--keys", "keys", "--plan", "plan.json", "--data", "tiny.csv", "--out", "train.btd"]);
    assert!(out.contains("8 samples") && out.contains("upload per sample"), "{out}");
    let ck = files::load_client_key(&dir.join("keys/client.key")).expect("client key");
    let plan = read_plan(&dir.join("plan.json"));
    let h = files::read_header(&dir.join("train.btd")).expect("dataset header");
    assert_eq!((h.fingerprint, h.plan, h.params), (ck.fingerprint(), PlanHash::of(&plan), ck.params().id()));
    let ds = files::load_dataset(&dir.join("train.btd"), ck.fingerprint(), PlanHash::of(&plan)).expect("dataset");
    assert_eq!(ds.samples.len(), 8);
    let per_sample = std::fs::metadata(dir.join("train.btd")).expect("dataset").len() / 8;
    let upload = res["upload_bytes_per_sample"].as_u64().expect("upload_bytes_per_sample");
    assert!(per_sample.abs_diff(upload) * 100 < upload, "upload {per_sample} B/sample, report predicts {upload}");
    // A dataset for another plan is refused by the server's loader, naming the file.
    let other = read_plan(&dir.join("other.json"));
    let e = files::load_dataset(&dir.join("train.btd"), ck.fingerprint(), PlanHash::of(&other)).expect_err("fails");
    assert!(matches!(e.kind, FileErrorKind::PlanMismatch { .. }) && e.to_string().contains("train.btd"), "{e}");
    ok(
        dir,
        &[
            "encrypt",
            "--keys",
            "keys",
            "--plan",
            "plan.json",
            "--data",
            "tiny.csv",
            "--out",
            "four.btd",
            "--limit",
            "4",
        ],
    );
    assert_eq!(
        files::load_dataset(&dir.join("four.btd"), ck.fingerprint(), PlanHash::of(&plan)).expect("ds").samples.len(),
        4
    );

    // decrypt + eval on a model made from the plan's initial tensors.
    write_initial_model(dir, &dir.join("keys"), "plan.json", "model.btm");
    ok(dir, &["decrypt", "--keys", "keys", "--plan", "plan.json", "--model", "model.btm", "--out", "weights.json"]);
    let w: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("weights.json")).expect("weights")).expect("json");
    for key in ["model", "plan_hash", "param_set", "params", "tensors", "plan"] {
        assert!(w.get(key).is_some(), "weights.json lacks `{key}`");
    }
    assert_eq!(w["params"]["W"]["shape"], serde_json::json!([2, 4]));
    let tensors: Vec<Vec<u64>> = serde_json::from_value(w["tensors"].clone()).expect("tensors");
    assert_eq!(tensors, init_tensors(&plan), "decrypted and rounded tensors are the encrypted ones exactly");
    let ev: Value =
        serde_json::from_str(&ok(dir, &["eval", "--weights", "weights.json", "--data", "tiny.csv", "--json"]))
            .expect("eval json");
    // Zero weights: every logit ties, argmax picks class 0 = half of the samples.
    assert_eq!(ev["accuracy"].as_f64(), Some(0.5), "{ev}");
    assert_eq!(ev["confusion"], serde_json::json!([[4, 0], [4, 0]]));
    let txt = ok(dir, &["eval", "--weights", "weights.json", "--data", "tiny.csv"]);
    assert!(txt.contains("accuracy  50.00 %") && txt.contains("confusion"), "{txt}");

    full_round_trip(dir);

    // Decrypting with another key: a key directory holding only a different client key.
    let other_keys = dir.join("other-keys");
    std::fs::create_dir_all(&other_keys).expect("dir");
    let other_ck = ClientKey::generate(&ParamSet::default_set(), &mut CryptoRng::from_seed(2));
    files::save_client_key(&other_keys.join("client.key"), &other_ck).expect("save key");
    let dec = |keys: &str, plan: &str, model: &str| {
        ["decrypt", "--keys", keys, "--plan", plan, "--model", model, "--out", "w2.json"].map(str::to_string)
    };
    let run_dec = |keys: &str, plan: &str, model: &str, needles: &[&str]| {
        let args = dec(keys, plan, model);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        fails(dir, &args, needles)
    };
    run_dec("other-keys", "plan.json", "model.btm", &["model.btm", "does not match the key"]);
    // Model for another plan.
    run_dec("keys", "other.json", "model.btm", &["model.btm", "made for plan", "current plan"]);
    // Truncated, bit-flipped, foreign, wrong kind.
    write_with(dir, "truncated.btm", "model.btm", |b| b.truncate(b.len() - 100));
    run_dec("keys", "plan.json", "truncated.btm", &["truncated.btm", "truncated"]);
    write_with(dir, "short.btm", "model.btm", |b| b.truncate(30));
    run_dec("keys", "plan.json", "short.btm", &["short.btm", "truncated"]);
    write_with(dir, "flipped.btm", "model.btm", |b| {
        let at = b.len() - 500;
        b[at] ^= 0x01;
    });
    run_dec("keys", "plan.json", "flipped.btm", &["flipped.btm", "corrupted"]);
    std::fs::write(dir.join("foreign.btm"), b"\x89PNG\r\n\x1a\n not a model at all").expect("write");
    run_dec("keys", "plan.json", "foreign.btm", &["foreign.btm", "not a blindtuner"]);
    run_dec("keys", "plan.json", "train.btd", &["train.btd", "found encrypted dataset, expected encrypted model"]);
    run_dec("keys", "plan.json", "missing.btm", &["missing.btm"]);
    // A damaged client key is reported as such (by every command that reads it).
    std::fs::create_dir_all(dir.join("bad-keys")).expect("dir");
    write_with(dir, "bad-keys/client.key", "keys/client.key", |b| {
        let at = b.len() - 10;
        b[at] ^= 0x80;
    });
    run_dec("bad-keys", "plan.json", "model.btm", &["bad-keys/client.key", "corrupted"]);
    let e = fails(
        dir,
        &["encrypt", "--keys", "bad-keys", "--plan", "plan.json", "--data", "tiny.csv", "--out", "x.btd"],
        &["bad-keys/client.key", "corrupted"],
    );
    assert!(!dir.join("x.btd").exists(), "no output after an error: {e}");
    // The server key bundle is not a client key.
    std::fs::create_dir_all(dir.join("swapped")).expect("dir");
    std::fs::hard_link(dir.join("keys/server.keys"), dir.join("swapped/client.key")).expect("link");
    run_dec("swapped", "plan.json", "model.btm", &["swapped/client.key", "found server keys, expected client key"]);
    run_dec("no-such-dir", "plan.json", "model.btm", &["no-such-dir/client.key", "keygen"]);
    // Edited weights are refused by eval.
    let mut edited = w.clone();
    edited["tensors"][0] = serde_json::json!([1, 2, 3]);
    std::fs::write(dir.join("edited.json"), edited.to_string()).expect("write");
    fails(dir, &["eval", "--weights", "edited.json", "--data", "tiny.csv"], &["edited.json", "do not match"]);
    let mut replanned = w;
    replanned["plan"]["train"]["lr"] = serde_json::json!(99.0);
    std::fs::write(dir.join("replanned.json"), replanned.to_string()).expect("write");
    fails(dir, &["eval", "--weights", "replanned.json", "--data", "tiny.csv"], &["replanned.json", "hash"]);
    fails(dir, &["eval", "--weights", "model.btm", "--data", "tiny.csv"], &["model.btm"]);
}

/// keygen → encrypt → train (server keys only) → decrypt → eval, 8 samples, 1 epoch.
fn full_round_trip(dir: &Path) {
    ok(
        dir,
        &[
            "train",
            "--plan",
            "plan.json",
            "--server-key",
            "keys/server.keys",
            "--data",
            "train.btd",
            "--out",
            "trained.btm",
            "--epochs",
            "1",
        ],
    );
    ok(dir, &["decrypt", "--keys", "keys", "--plan", "plan.json", "--model", "trained.btm", "--out", "trained.json"]);
    let w: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("trained.json")).expect("weights")).expect("json");
    let max = w["params"]["W"]["values"]
        .as_array()
        .expect("values")
        .iter()
        .filter_map(Value::as_f64)
        .fold(0f64, |m, v| m.max(v.abs()));
    assert!(max > 0.0, "one epoch of training moves the weights off zero");
    let ev: Value =
        serde_json::from_str(&ok(dir, &["eval", "--weights", "trained.json", "--data", "tiny.csv", "--json"]))
            .expect("eval json");
    assert!(ev["accuracy"].as_f64().expect("accuracy") > 0.5, "separable data after one epoch: {ev}");
}

#[test]
fn plan_and_argument_errors_name_the_file() {
    let s = Scratch::new("plans");
    let dir = s.0.as_path();
    setup(dir);
    std::fs::write(dir.join("broken.json"), "{ \"version\": 1, \"model\": ").expect("write");
    std::fs::write(dir.join("notplan.json"), "{ \"hello\": 1 }").expect("write");
    let mut newer: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("plan.json")).expect("plan")).expect("j");
    newer["version"] = serde_json::json!(99);
    std::fs::write(dir.join("newer.json"), newer.to_string()).expect("write");
    // The plan is read before the keys: no keygen needed for these.
    fn enc(plan: &str) -> [&str; 9] {
        ["encrypt", "--keys", "k", "--plan", plan, "--data", "tiny.csv", "--out", "o.btd"]
    }
    fails(dir, &enc("broken.json"), &["broken.json", "invalid JSON"]);
    fails(dir, &enc("notplan.json"), &["notplan.json", "not a plan"]);
    fails(dir, &enc("newer.json"), &["newer.json", "version 99"]);
    fails(dir, &enc("missing.json"), &["missing.json"]);
    fails(dir, &enc("plan.json"), &["k/client.key", "keygen"]);
    fails(dir, &["keygen", "--out", "k", "--bsk", "9x9"], &["9x9", "12x3", "10x4"]);
}

#[test]
fn report_has_the_security_and_resources_section() {
    let s = Scratch::new("report");
    let dir = s.0.as_path();
    std::fs::write(dir.join("tiny.bt"), tiny_spec(4)).expect("write spec");
    let txt = ok(dir, &["report", "tiny.bt"]);
    for needle in ["security & resources", "128-bit", "server keys", "upload per sample", "estimated time", "tfhe_step"]
    {
        assert!(txt.contains(needle), "report lacks `{needle}`");
    }
    let r: Value = serde_json::from_str(&ok(dir, &["report", "tiny.bt", "--format", "json"])).expect("json");
    let res = &r["resources"];
    assert_eq!(res["security_bits"], 128);
    // The set the resources are for is the one the compiler chose (`key`), one of the
    // runtime's sets.
    let key = &r["key"];
    let chosen = &key["candidates"][key["chosen"].as_u64().expect("index") as usize]["bsk"];
    let id = res["param_set"].as_str().expect("param set");
    assert!(id.contains(&format!("-bsk{}-", chosen.as_str().expect("name"))), "{id} vs {chosen}");
    let allowed: Vec<String> = ParamSet::all().iter().map(|p| p.id().0).collect();
    assert!(allowed.iter().any(|a| a == id));
    assert_eq!(res["allowed_param_sets"], serde_json::json!(allowed));
    // k = 2 sigmoid head: one forward and one backward GGSW, the error's label term and
    // the loss program's label sign, 2 LWEs each.
    assert_eq!((res["ggsw_per_sample"].as_u64(), res["label_lwes_per_sample"].as_u64()), (Some(2), Some(4)));
}
