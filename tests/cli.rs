//! End-to-end tests of the `blindtuner` binary: exit codes, output contracts,
//! data errors. Everything runs on the bundled models and data.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn bt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_blindtuner"))
        .args(args)
        .current_dir(root())
        .env("NO_COLOR", "1")
        .output()
        .expect("run blindtuner")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn models() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root().join("models"))
        .expect("models dir")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "bt"))
        .map(|p| format!("models/{}", p.file_name().unwrap_or_default().to_string_lossy()))
        .collect();
    v.sort();
    v
}

/// A scratch directory unique to this test.
fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("blindtuner-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

#[test]
fn every_model_checks() {
    let ms = models();
    assert!(ms.len() >= 5, "models/: {ms:?}");
    for m in ms {
        let o = bt(&["check", &m]);
        assert_eq!(o.status.code(), Some(0), "{m}: {}", stderr(&o));
    }
}

#[test]
fn empty_and_comment_only_files_are_errors() {
    let d = scratch("empty");
    for (name, text) in [("empty.bt", ""), ("comments.bt", "# nothing here\n# at all\n")] {
        let p = d.join(name);
        std::fs::write(&p, text).expect("write");
        let o = bt(&["check", p.to_str().expect("utf8 path")]);
        assert_eq!(o.status.code(), Some(1), "{name}");
        assert!(stderr(&o).contains("no model"), "{name}: {}", stderr(&o));
    }
}

#[test]
fn diagnostics_have_caret_and_exit_1() {
    let d = scratch("diag");
    let p = d.join("bad.bt");
    std::fs::write(&p, "model m {\n  input x : fixed[4] in [0, 1]\n  label y : onehot[3]\n  param W : fixed[3, 5] = zeros\n  z = W @ x\n  loss = softmax_cross_entropy(z, y)\n}\n")
        .expect("write");
    let o = bt(&["check", p.to_str().expect("utf8 path")]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.contains("error"), "{e}");
    assert!(e.contains("^"), "caret under the span: {e}");
    assert!(e.contains("bad.bt:5"), "file:line: {e}");
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(bt(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(bt(&["check"]).status.code(), Some(2));
    assert_eq!(bt(&["compile", "models/mnist_vit_sigmoid.bt", "--emit", "nonsense"]).status.code(), Some(2));
    assert_eq!(bt(&["check", "models/mnist_vit_sigmoid.bt", "--set", "d"]).status.code(), Some(2));
}

#[test]
fn missing_file_is_a_user_error() {
    let o = bt(&["check", "models/does-not-exist.bt"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("does-not-exist.bt"));
}

#[test]
fn compile_emits_every_form() {
    for emit in ["ast", "graph", "plan", "dot"] {
        let o = bt(&["compile", "models/mnist_vit_mlp.bt", "--emit", emit]);
        assert_eq!(o.status.code(), Some(0), "{emit}: {}", stderr(&o));
        assert!(!stdout(&o).trim().is_empty(), "{emit}");
    }
    let o = bt(&["compile", "models/mnist_vit_softmax.bt", "--emit", "plan"]);
    let plan: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("plan is JSON");
    assert!(plan.get("sample").is_some());
}

#[test]
fn stop_after_every_pass_and_unknown_pass() {
    let passes = stdout(&bt(&["passes"]));
    let names: Vec<&str> = passes.lines().filter_map(|l| l.split_whitespace().next()).collect();
    assert!(names.len() >= 4, "{passes}");
    for p in &names {
        let o = bt(&["compile", "models/mnist_vit_sigmoid.bt", "--emit", "graph", "--stop-after", p]);
        // Stopping before a graph exists is a clean user error, never a crash.
        assert!(matches!(o.status.code(), Some(0) | Some(1)), "{p}: {}", stderr(&o));
    }
    let o = bt(&["compile", "models/mnist_vit_sigmoid.bt", "--stop-after", "no-such-pass"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no-such-pass"));
}

#[test]
fn report_json_has_totals_and_nodes() {
    for m in models() {
        let o = bt(&["report", &m, "--format", "json"]);
        assert_eq!(o.status.code(), Some(0), "{m}: {}", stderr(&o));
        let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("one JSON object");
        for key in ["pbs_per_sample", "pbs_per_step", "external_products_per_step", "pbs_depth"] {
            assert!(v.get(key).and_then(|x| x.as_f64()).is_some(), "{m}: missing {key}");
        }
        assert!(v["nodes"].as_array().is_some_and(|a| !a.is_empty()), "{m}: nodes");
    }
}

#[test]
fn sigmoid_head_pbs_per_sample_is_k_and_independent_of_d() {
    let pbs = |set: &str| {
        let o = bt(&["report", "models/mnist_vit_sigmoid.bt", "--format", "json", "--set", set]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
        v["pbs_per_sample"].as_f64().expect("pbs_per_sample")
    };
    assert_eq!(pbs("d=16"), 5.0);
    assert_eq!(pbs("d=64"), 5.0);
    assert_eq!(pbs("d=768"), 5.0);
}

fn write_csv(dir: &Path, prefix: &str, train: &str, test: &str) -> String {
    std::fs::write(dir.join(format!("{prefix}.train.csv")), train).expect("write");
    std::fs::write(dir.join(format!("{prefix}.test.csv")), test).expect("write");
    dir.join(prefix).to_str().expect("utf8").to_string()
}

#[test]
fn run_json_is_one_object_with_the_contract_keys() {
    let o = bt(&[
        "run",
        "models/mnist_vit_sigmoid.bt",
        "--data",
        "data/mnist-vit16",
        "--limit",
        "200",
        "--epochs",
        "1",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("exactly one JSON object on stdout");
    for key in ["test_accuracy", "train_seconds", "steps", "pbs_count"] {
        assert!(v.get(key).is_some(), "missing {key}: {out}");
    }
    assert_eq!(v["steps"].as_u64(), Some(25), "200 samples / batch 8");
    // k PBS per sample, plus the loss program (2k) on the samples of steps 0 and 21.
    assert_eq!(v["pbs_count"].as_u64(), Some(200 * 5 + 2 * 8 * 10), "k PBS per sample and the loss");
}

#[test]
fn bad_csv_names_file_and_line() {
    let d = scratch("csv");
    let header = "label,f0,f1\n";
    let cases = [
        ("ragged", format!("{header}0,1,2\n1,2\n"), ".train.csv:3"),
        ("nonnumber", format!("{header}0,1,2\n1,abc,2\n"), ".train.csv:3"),
        ("label", format!("{header}0,1,2\n7,1,2\n"), ".train.csv:3"),
    ];
    for (name, train, want) in cases {
        let prefix = write_csv(&d, name, &train, &format!("{header}0,1,2\n"));
        let o = bt(&["run", "models/mnist_vit_sigmoid.bt", "--data", &prefix, "--set", "k=2"]);
        assert_eq!(o.status.code(), Some(1), "{name}: {}", stderr(&o));
        let e = stderr(&o);
        assert!(e.contains(&format!("{name}.train.csv")) && e.contains(want), "{name}: {e}");
    }
}

#[test]
fn out_of_range_inputs_are_clamped_and_reported() {
    let d = scratch("clamp");
    let mut train = String::from("label,f0,f1\n");
    for i in 0..16 {
        train.push_str(&format!("{},{},0.5\n", i % 2, if i % 4 == 0 { 100.0 } else { 0.5 }));
    }
    let prefix = write_csv(&d, "clamp", &train, "label,f0,f1\n0,0.5,0.5\n1,-0.5,0.5\n");
    let o = bt(&["run", "models/mnist_vit_sigmoid.bt", "--data", &prefix, "--epochs", "1"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("clamp"), "a warning about clamped values: {e}");
    assert!(e.contains("f0"), "names the feature: {e}");
}

#[test]
fn simulate_counts_far_landings_of_graded_tables_apart() {
    // An MLP's activation and relu gate are read at 1/8 cells, finer than the failure
    // budget's: their far landings are rounding errors (`Lut::graded`), tallied apart
    // from the failures, of which the budget leaves none here.
    let args = [
        "run",
        "models/mnist_vit_mlp.bt",
        "--set",
        "h=4",
        "--data",
        "data/mnist-vit16",
        "--backend",
        "simulate",
        "--limit",
        "200",
        "--epochs",
        "1",
        "--json",
    ];
    let out = bt(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("one JSON object");
    assert_eq!(v["pbs_further_off"], 0);
    let graded = v["pbs_further_off_graded"].as_u64().expect("graded far landings");
    let total = v["simulated_pbs"].as_u64().expect("bootstraps");
    assert!(graded > 0 && graded < total / 10, "{graded} of {total}");
}

#[test]
fn simulate_backend_reports_where_bootstraps_landed() {
    let args = [
        "run",
        "models/mnist_vit_sigmoid.bt",
        "--data",
        "data/mnist-vit16",
        "--backend",
        "simulate",
        "--limit",
        "400",
        "--epochs",
        "2",
        "--json",
    ];
    let out = bt(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("one JSON object");
    assert_eq!(v["backend"], "simulate");
    // 400 samples × 2 epochs × k = 5 bootstraps and the loss program's 2k on the
    // samples of steps 0, 21 and 42 of each epoch, every one tallied.
    assert_eq!(v["simulated_pbs"], 4000 + 2 * 3 * 8 * 10);
    let rate = v["pbs_one_cell_off"].as_f64().unwrap_or(0.0) / 4480.0;
    let predicted = v["predicted_one_cell_off_rate"].as_f64().unwrap_or(0.0);
    assert!((rate - predicted).abs() < 0.04, "one cell off {rate}, predicted {predicted}");
    assert_eq!(v["one_cell_off_rate_per_epoch"].as_array().map(Vec::len), Some(2));
    // The clear run on the same samples rides along: the prediction is a distance from it.
    let clear = v["clear_test_accuracy"].as_f64().expect("clear accuracy");
    assert!((0.0..=1.0).contains(&clear));
    let diff = v["max_abs_weight_diff_vs_clear"].as_f64().expect("weight distance");
    assert!(diff > 0.0 && diff < 0.5, "noise moves the weights a little: {diff}");
    // Seeded: the same noise seed gives the same run.
    let again = bt(&args);
    let w: serde_json::Value = serde_json::from_str(&stdout(&again)).expect("one JSON object");
    assert_eq!(v["test_accuracy"], w["test_accuracy"]);
    assert_eq!(v["pbs_one_cell_off"], w["pbs_one_cell_off"]);

    // The other bootstrap key: less output noise, the same cells (the keyswitch and
    // modulus switch decide those); an unknown one is a user error.
    let mut other = args.to_vec();
    other.extend(["--bsk", "10x4"]);
    let out = bt(&other);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut bad = args.to_vec();
    bad.extend(["--bsk", "9x9"]);
    let out = bt(&bad);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("unknown bootstrap-key decomposition `9x9`"), "{}", stderr(&out));
}
