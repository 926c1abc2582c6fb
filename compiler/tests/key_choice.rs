//! The compiler's choice of bootstrap key (`noise::choose`): it follows the output step
//! of the lookup tables in the worst epoch, so the learning-rate schedule and the epoch
//! count move it, and it is the cheapest set that fits.

use blindtuner_compiler::check::check_source;
use blindtuner_compiler::noise::choose_key;
use blindtuner_compiler::pipeline;
use blindtuner_compiler::plan::Plan;
use std::collections::BTreeMap;

fn bundled(name: &str) -> Plan {
    bundled_with(name, |s| s.to_string())
}

fn bundled_with(name: &str, edit: impl Fn(&str) -> String) -> Plan {
    let path = format!("{}/../models/{name}.bt", env!("CARGO_MANIFEST_DIR"));
    let src = edit(&std::fs::read_to_string(path).expect("bundled model"));
    let (spec, diags) = check_source(&src, &BTreeMap::new());
    let spec = spec.unwrap_or_else(|| panic!("{diags:?}"));
    pipeline::run(spec, None).expect("compiles").plan.expect("a plan")
}

#[test]
fn long_schedule_needs_the_quieter_key() {
    // 16 epochs, lr halved every 3: the error table ends 5 shifts down, its steepest
    // step 2^38.9 (32 cells: the failure budget's precision), so σ must stay under
    // 2^37.9: 12x3 (2^38.5) does not, 10x4 (2^36.7) does.
    let plan = bundled("mnist_vit_sigmoid");
    let k = choose_key(&plan);
    assert_eq!(k.name(), "10x4");
    assert_eq!(k.limiting_lut.as_deref(), Some("error"));
    let half = k.log2_half_step.expect("a table");
    assert!((half - 37.9).abs() < 0.05, "half step 2^{half}");
    assert!(!k.candidates[0].meets && k.candidates[1].meets);
    assert!(k.candidates[0].out_log2_std > half && k.candidates[1].out_log2_std < half);
}

#[test]
fn short_runs_afford_the_cheaper_key() {
    // Two epochs never decay the rate: the step is 2^43 and 12x3 fits.
    let mut plan = bundled("mnist_vit_sigmoid");
    plan.train.epochs = 2;
    let k = choose_key(&plan);
    assert_eq!(k.name(), "12x3");
    assert!(k.candidates.iter().all(|c| c.meets));
    // The cheapest of those that fit.
    assert!(k.candidates[k.chosen].pbs_ms <= k.candidates.iter().map(|c| c.pbs_ms).fold(f64::MAX, f64::min));
}

#[test]
fn the_choice_moves_at_the_predicted_shift() {
    // Each halving of the rate halves the step: 12x3 fits while the half step is above
    // 2^38.5 (shift ≤ 4), so the switch happens where the fifth halving is reached.
    let mut plan = bundled("mnist_vit_sigmoid");
    let every = plan.train.schedule.expect("a schedule").every;
    let mut names = Vec::new();
    for shift in 0..=5 {
        plan.train.epochs = every * shift + 1;
        assert_eq!(plan.train.max_lr_shift(), shift as u32);
        names.push(choose_key(&plan).name().to_string());
    }
    assert_eq!(names, ["12x3", "12x3", "12x3", "12x3", "12x3", "10x4"]);
}

#[test]
fn the_batch_moves_the_choice() {
    // lr/B is folded into the error table: halving the batch doubles its step. At
    // B = 8 the worst-epoch half step is 2^37.9 (12x3's 2^38.5 too noisy), at B = 4
    // 2^38.9 (12x3 fits). At B = 32 (2^35.9) no key fits: the quietest is taken and
    // flagged.
    let with_batch = |b: usize| {
        let plan = bundled_with("mnist_vit_sigmoid", |s| s.replace("batch     = 8", &format!("batch     = {b}")));
        assert_eq!(plan.train.batch, b);
        choose_key(&plan)
    };
    let halves: Vec<(String, i64)> = [2, 4, 8, 16, 32]
        .into_iter()
        .map(|b| {
            let k = with_batch(b);
            (k.name().to_string(), k.log2_half_step.expect("a table").round() as i64)
        })
        .collect();
    assert_eq!(
        halves,
        [
            ("12x3".to_string(), 40),
            ("12x3".to_string(), 39),
            ("10x4".to_string(), 38),
            ("10x4".to_string(), 37),
            ("10x4".to_string(), 36)
        ]
    );
    let k = with_batch(32);
    assert!(k.candidates.iter().all(|c| !c.meets), "nothing fits at B = 32");
}
