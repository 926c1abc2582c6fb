//! The encrypted path through the binary: `run --backend tfhe` end to end, and the
//! server's `train` command on files from `keygen`/`encrypt` (with a key mismatch).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn bt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_blindtuner")).args(args).current_dir(root()).output().expect("binary runs")
}

fn ok(args: &[&str]) -> Output {
    let out = bt(args);
    assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    out
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

#[test]
fn run_tfhe_json_has_the_contract_keys_and_counted_pbs() {
    let out = ok(&[
        "run",
        "models/mnist_vit_sigmoid.bt",
        "--data",
        "data/mnist-vit16",
        "--backend",
        "tfhe",
        "--limit",
        "16",
        "--epochs",
        "1",
        "--json",
    ]);
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    assert_eq!(stdout.lines().count(), 1, "one JSON object: {stdout}");
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    for key in [
        "test_accuracy",
        "train_seconds",
        "steps",
        "pbs_count",
        "pbs_per_sample",
        "pbs_per_second",
        "peak_pbs_per_second",
        "seconds_per_sample",
        "max_abs_weight_diff_vs_clear",
        "reference_pbs_seconds",
        "param_set",
        "clear_test_accuracy",
    ] {
        assert!(!v[key].is_null(), "missing `{key}` in {v}");
    }
    assert_eq!(v["backend"], "tfhe");
    // One epoch never decays the rate: the compiler's key is the cheaper 12x3, and the
    // JSON names the set the run used.
    assert!(v["param_set"].as_str().is_some_and(|id| id.contains("-bsk12x3-")), "{}", v["param_set"]);
    // k = 5 sigmoid LUTs per sample, counted at the bootstrap calls, and the loss
    // program's 2k on the 8 samples of step 0 (the only measured step of 2).
    assert_eq!(v["pbs_count"].as_u64(), Some(16 * 5 + 8 * 10));
    // The training loss, measured under encryption and decrypted, beside the clear
    // backend's run of the same program (bootstrap noise and one-cell-off landings apart).
    let (enc, clear) = (&v["loss_per_epoch"][0], &v["clear_loss_per_epoch"][0]);
    let (enc, clear) = (enc.as_f64().unwrap_or(f64::NAN), clear.as_f64().unwrap_or(f64::NAN));
    assert!((enc - clear).abs() < 0.5 && enc > 0.0, "encrypted loss {enc}, clear {clear}");
    assert_eq!(v["steps"].as_u64(), Some(2), "16 samples in batches of 8");
    let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    assert!(f("reference_pbs_seconds") > 0.0 && f("peak_pbs_per_second") > 0.0);
    assert!(f("pbs_per_second") > 0.0 && f("seconds_per_sample") > 0.0);
    // Two steps at the spec's lr 0.5 (batch 8): the encrypted weights track the clear
    // ones up to the few bootstraps that land one cell off. One such landing moves an
    // error value by at most sigmoid's slope × a half-unit cell (0.125) × lr/B, and a
    // weight by that × |x| ≤ 6: 0.047 per landing; allow four on the same weight.
    let diff = f("max_abs_weight_diff_vs_clear");
    assert!((0.0..0.19).contains(&diff), "weights differ from the clear run by {diff}");
    assert!((0.0..=1.0).contains(&f("test_accuracy")));
}

#[test]
fn train_command_runs_on_files_and_refuses_other_keys() {
    let dir = std::env::temp_dir().join(format!("bt-cli-tfhe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (plan, keys, other, data, model) =
        (dir.join("plan.json"), dir.join("keys"), dir.join("other"), dir.join("train.enc"), dir.join("model.enc"));
    ok(&["compile", "models/mnist_vit_sigmoid.bt", "--set", "d=16", "--emit", "plan", "-o", s(&plan)]);
    ok(&["keygen", "--out", s(&keys), "--insecure-seed", "1"]);
    ok(&["keygen", "--out", s(&other), "--insecure-seed", "2"]);
    let train = "data/mnist-vit16.train.csv";
    ok(&["encrypt", "--keys", s(&keys), "--plan", s(&plan), "--data", train, "--out", s(&data), "--limit", "8"]);

    // Server keys of another keygen: a clear error naming the dataset, exit 1.
    let server = |k: &Path| k.join("server.keys");
    let bad =
        bt(&["train", "--plan", s(&plan), "--server-key", s(&server(&other)), "--data", s(&data), "--out", s(&model)]);
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("train.enc") && err.contains("key"), "{err}");
    assert!(!model.exists());

    // --resume without a checkpoint is an error, not a fresh start.
    let own = server(&keys);
    let args = ["train", "--plan", s(&plan), "--server-key", s(&own), "--data", s(&data), "--out", s(&model)];
    let resume = bt(&[&args[..], &["--resume"]].concat());
    assert_eq!(resume.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&resume.stderr).contains("checkpoint"));

    ok(&[&args[..], &["--epochs", "1"]].concat());
    assert!(model.exists());
    assert!(!dir.join("model.enc.ckpt").exists(), "the checkpoint is removed once the model is written");
    let weights = dir.join("weights.json");
    let out = ok(&["decrypt", "--keys", s(&keys), "--plan", s(&plan), "--model", s(&model), "--out", s(&weights)]);
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(weights.exists());
    // The bundled spec averages its last 2 epochs; a 1-epoch run averages its only step.
    assert!(out.contains("mean of the last 1 step(s) (`average = 2`)"), "{out}");
    assert!(out.contains("training loss, measured under encryption") && out.contains("epoch   1"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// An MLP head (products of two server values) through the file-based flow: `keygen
/// --plan` writes the conversion keys beside the server keys, `train` finds them there
/// (or takes `--convert-key`), refuses to start without them, and counts exactly the
/// bootstraps it announced.
#[test]
fn an_mlp_trains_from_files_with_its_conversion_keys() {
    let dir = std::env::temp_dir().join(format!("bt-cli-mlp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (plan, keys, data, model) = (dir.join("plan.json"), dir.join("keys"), dir.join("train.enc"), dir.join("m.enc"));
    let spec = "models/mnist_vit_mlp.bt";
    ok(&["compile", spec, "--set", "d=16", "--set", "h=2", "--emit", "plan", "-o", s(&plan)]);
    let out = ok(&["keygen", "--out", s(&keys), "--plan", s(&plan), "--insecure-seed", "3"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("`server.keys` and `convert.keys`"));
    let train = "data/mnist-vit16.train.csv";
    ok(&["encrypt", "--keys", s(&keys), "--plan", s(&plan), "--data", train, "--out", s(&data), "--limit", "4"]);

    // Moved away: `train` says which keys it needs and where it looked.
    let (server, moved) = (keys.join("server.keys"), dir.join("conv.keys"));
    std::fs::rename(keys.join("convert.keys"), &moved).expect("move the conversion keys");
    let args = ["train", "--plan", s(&plan), "--server-key", s(&server), "--data", s(&data), "--out", s(&model)];
    let missing = bt(&args);
    assert_eq!(missing.status.code(), Some(1));
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(err.contains("conversion keys") && err.contains("convert.keys") && err.contains("--convert-key"), "{err}");
    // Another kind of file given as the conversion keys: named, exit 1.
    let wrong = bt(&[&args[..], &["--convert-key", s(&server)]].concat());
    assert_eq!(wrong.status.code(), Some(1));
    let err = String::from_utf8_lossy(&wrong.stderr);
    assert!(err.contains("server.keys") && err.contains("expected conversion keys"), "{err}");
    assert!(!model.exists());

    let run = ok(&[&args[..], &["--convert-key", s(&moved), "--epochs", "1"]].concat());
    let log = String::from_utf8_lossy(&run.stderr);
    // "…, N PBS in all" announced before training, "wrote … (…, N PBS in …)" after.
    let announced =
        log.split(" PBS in all").next().and_then(|l| l.rsplit(' ').next()).and_then(|n| n.parse::<u64>().ok());
    let wrote = log.lines().find(|l| l.starts_with("wrote ")).unwrap_or_default();
    let counted =
        wrote.split(" samples, ").nth(1).and_then(|l| l.split(" PBS in ").next()).and_then(|n| n.parse().ok());
    assert!(announced.is_some() && announced == counted, "announced {announced:?}, counted {counted:?}:\n{log}");
    let weights = dir.join("weights.json");
    let out = ok(&["decrypt", "--keys", s(&keys), "--plan", s(&plan), "--model", s(&model), "--out", s(&weights)]);
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(out.contains("training loss, measured under encryption") && out.contains("epoch   1"), "{out}");
    let w: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&weights).expect("weights")).expect("weights JSON");
    let b1 = w["params"]["b1"]["values"].as_array().expect("b1 values");
    assert!(b1.iter().filter_map(|v| v.as_f64()).any(|v| v != 0.0), "one step moves the hidden bias: {b1:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn calibrate_measures_and_the_report_uses_it() {
    let dir = std::env::temp_dir().join(format!("bt-calibrate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("calibration.json");
    ok(&["calibrate", "--samples", "8", "--out", s(&file)]);
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).expect("written")).expect("calibration is JSON");
    for key in ["pbs_ms", "keyswitch_ms", "pack_ms_per_lwe", "wall_seconds_per_sample", "reference_pbs_ms"] {
        assert!(v[key].as_f64().is_some_and(|x| x > 0.0), "{key}: {}", v[key]);
    }
    assert_eq!(v["samples"], 8);
    let out = ok(&["report", "models/mnist_vit_sigmoid.bt", "--calibration", s(&file)]);
    let text = String::from_utf8(out.stdout).expect("utf-8");
    assert!(text.contains("measured on this host by `blindtuner calibrate`"), "{text}");

    // A file that is not a calibration: exit 1, the file named.
    let bad = dir.join("bad.json");
    std::fs::write(&bad, "{}").expect("write");
    let out = bt(&["report", "models/mnist_vit_sigmoid.bt", "--calibration", s(&bad)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.json: not a calibration file"));
    let _ = std::fs::remove_dir_all(&dir);
}
