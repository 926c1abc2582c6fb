//! The server interpreter on real keys: LUT bootstraps against `Lut::eval`, and a
//! lock-step run of the sigmoid head (d = 16, k = 5) against a clear re-execution that
//! applies the cells the encrypted bootstraps selected.

mod tfhe_common;

use blindtuner_compiler::plan::{Inst, LutId, RegId, StepInst, TensorId};
use blindtuner_runtime::tfhe::{CryptoRng, KeyKind, Server, TfheError};
use tfhe_common::*;

/// 12/3 BSK output noise is σ ≈ 2^38.5; ~11σ.
const PBS_NOISE_BOUND: u64 = 1 << 42;

#[test]
fn lut_bootstrap_matches_lut_eval() {
    let (ck, sk) = keys();
    let plan = head_plan(16, 5);
    let server = Server::new(sk, &plan).expect("plan is supported");
    let lut = &plan.luts[0];
    let n = plan.poly_size;
    let mut rng = CryptoRng::from_seed(3);
    // Cell centres (after the offset) for z ∈ [−7.75, 7.75], plus off-centre values.
    let mut zs: Vec<u64> = (-31i64..=31).map(|g| ((g << Z_SCALE) / 4) as u64).collect();
    let mut r = Rng(17);
    zs.extend((0..17).map(|_| r.int(-(7 << 20), 7 << 20) << (Z_SCALE - 20)).map(|v| v as u64));
    let before = server.stats().pbs;
    let x = ck.encrypt_lwe_vec(KeyKind::Data, &zs, &mut rng);
    let (out, small) = server.lut(LutId(0), &x).expect("lut runs");
    assert_eq!(server.stats().pbs - before, zs.len() as u64, "every element is one counted PBS");
    assert_eq!(out.key, KeyKind::Pbs);
    let got = ck.decrypt_lwe_vec(&out);
    let cells = 2 * lut.table.len();
    let mut same = 0;
    for ((&z, &g), s) in zs.iter().zip(&got).zip(&small) {
        let (_, clear_cell) = lut.eval(z, n);
        let idx = ck.pbs_index(s);
        let (selected, cell) = lut.at_index(idx, n);
        // The output is the value of the cell the blind rotation selected, up to noise…
        let noise = torus_diff(g, selected).unsigned_abs();
        assert!(noise < PBS_NOISE_BOUND, "z = {z:#x}: PBS output noise 2^{:.1}", (noise as f64).log2());
        // …and that cell is the noise-free one or a neighbour (modulus-switch noise).
        let dist = (cell + cells - clear_cell) % cells;
        assert!(dist <= 1 || dist == cells - 1, "z = {z:#x}: cell {cell}, noise-free cell {clear_cell}");
        same += usize::from(cell == clear_cell);
    }
    assert!(same * 10 >= zs.len() * 7, "only {same}/{} bootstraps picked the noise-free cell", zs.len());
}

/// Clear mirror of the head plan with the bootstrap cells forced to `cells`.
struct ClearHead {
    w: Vec<u64>,
    g: Vec<u64>,
    k: usize,
    cols: usize,
}

impl ClearHead {
    fn z(&self, x: &[i64]) -> Vec<u64> {
        (0..self.k)
            .map(|r| {
                (0..self.cols).fold(0u64, |a, j| a.wrapping_add(self.w[r * self.cols + j].wrapping_mul(x[j] as u64)))
            })
            .collect()
    }
    fn sample(&mut self, plan: &blindtuner_compiler::plan::Plan, x: &[i64], y: usize, idx: &[usize]) {
        let Inst::LabelTerm { on, off, .. } = plan.sample[2] else { unreachable!("head plan layout") };
        for (r, &i) in idx.iter().enumerate() {
            let (s, _) = plan.luts[0].at_index(i, plan.poly_size);
            let e = s.wrapping_sub(if r == y { on } else { off });
            for (j, &xj) in x.iter().enumerate() {
                let gi = &mut self.g[r * self.cols + j];
                *gi = gi.wrapping_add(e.wrapping_mul(xj as u64));
            }
        }
    }
    fn step(&mut self) {
        for (w, g) in self.w.iter_mut().zip(&mut self.g) {
            *w = w.wrapping_sub(*g);
            *g = 0;
        }
    }
}

#[test]
fn lock_step_training_matches_clear_reexecution() {
    let (ck, sk) = keys();
    let (d, k) = (16, 5);
    let plan = head_plan(d, k);
    let server = Server::new(sk, &plan).expect("plan is supported");
    let info = server.info().clone();
    let mut rng = CryptoRng::from_seed(5);
    let mut r = Rng(99);
    let init = initial_model(&mut r, &plan);
    let mut model = ck.encrypt_model(&plan, &init, &mut rng).expect("model encrypts");
    let mut clear = ClearHead { w: init[0].clone(), g: init[1].clone(), k, cols: d + 1 };
    let (steps, batch) = (3, 2);
    let (mut far, mut total, mut off) = (0, 0, 0);
    for _ in 0..steps {
        let data: Vec<(Vec<i64>, usize)> =
            (0..batch).map(|_| (features(&mut r, d), r.int(0, k as i64 - 1) as usize)).collect();
        // Half of the samples with the constant feature appended (the clear backend's form).
        let samples: Vec<_> = data
            .iter()
            .enumerate()
            .map(|(i, (x, y))| {
                let xq: Vec<i64> = if i % 2 == 0 { x.clone() } else { x.iter().copied().chain([8]).collect() };
                ck.encrypt_sample(&plan, &info, &[xq], &[*y], &mut rng).expect("sample")
            })
            .collect();
        // The logits of the current model: decrypted ≈ clear.
        let z = ck.decrypt_lwe_vec(&server.forward(&model, &samples[0]).expect("forward"));
        let aug: Vec<i64> = data[0].0.iter().copied().chain([8]).collect();
        for (zc, ze) in clear.z(&aug).iter().zip(&z) {
            let diff = torus_diff(*ze, *zc).unsigned_abs();
            assert!(diff < 1 << 55, "logit off by 2^{:.1} (1/16 z-unit is 2^55)", (diff as f64).log2());
        }
        let traces = server.train_batch(&mut model, &samples).expect("train step");
        for ((x, y), trace) in data.iter().zip(&traces) {
            let aug: Vec<i64> = x.iter().copied().chain([8]).collect();
            assert_eq!(trace.len(), 1, "one Lut instruction per sample");
            let idx: Vec<usize> = trace[0].1.iter().map(|s| ck.pbs_index(s)).collect();
            let zc = clear.z(&aug);
            for (&i, &zv) in idx.iter().zip(&zc) {
                let (_, want) = plan.luts[0].eval(zv, plan.poly_size);
                let (_, got) = plan.luts[0].at_index(i, plan.poly_size);
                let cells = 2 * plan.luts[0].table.len();
                let dist = (got + cells - want) % cells;
                total += 1;
                off += usize::from(dist != 0);
                far += usize::from(dist > 1 && dist < cells - 1);
            }
            clear.sample(&plan, &aug, *y, &idx);
        }
        clear.step();
    }
    assert_eq!(far, 0, "a bootstrap selected a far cell");
    assert!(off * 3 <= total, "{off}/{total} bootstraps off by one cell");
    let dec = ck.decrypt_model(&plan, &model).expect("decrypts");
    let noise: Vec<u64> = dec[0].iter().zip(&clear.w).map(|(a, b)| torus_diff(*a, *b).unsigned_abs()).collect();
    let worst = noise.iter().copied().max().unwrap_or(0);
    // Per update: PBS noise × |x_j| ≈ 2^43; 6 updates: a few 2^44; 2^47 = 128 W-LSB.
    assert!(worst < 1 << 47, "W noise after {steps} steps: max 2^{:.1}", (worst as f64).log2());
    // The model really moved: updates are e·x ≫ the noise bound.
    let moved = clear.w.iter().zip(&init[0]).filter(|(a, b)| torus_diff(**a, **b).unsigned_abs() > 1 << 50).count();
    assert!(moved > clear.w.len() / 2, "only {moved} weights changed");
    // The accumulator was zeroed by the step program.
    assert!(dec[1].iter().all(|&g| g == 0), "G is a trivial zero after the step");
    let stats = server.stats();
    // The forward program (logits) has no bootstrap: k PBS per training sample.
    assert_eq!(stats.pbs, (steps * batch * k) as u64);
    let std = (noise.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / noise.len() as f64).sqrt();
    eprintln!(
        "W noise after {steps} steps × batch {batch}: std 2^{:.1}, max 2^{:.1}; {off}/{total} cells off by one",
        std.log2(),
        (worst as f64).log2()
    );
}

#[test]
fn unsupported_instructions_are_errors() {
    let (_, sk) = keys();
    let mut plan = head_plan(16, 5);
    plan.sample.push(Inst::Mul { a: RegId(0), b: RegId(1), out: RegId(2) });
    let err = Server::new(sk, &plan).err().expect("Mul is not supported");
    assert!(matches!(err, TfheError::Unsupported { .. }), "{err}");
    assert!(err.to_string().contains("Mul"), "{err}");

    // A rescale (a momentum) of a polynomial tensor runs (`tfhe::refresh`).
    let mut plan = head_plan(16, 5);
    plan.step.push(StepInst::Rescale { dst: TensorId(0), src: TensorId(0), factor: 0.5, digits: 2 });
    assert!(Server::new(sk, &plan).is_ok(), "a rescale of a polynomial tensor runs");

    // Packing a register under the data key would encrypt S′ under itself.
    let mut plan = head_plan(16, 5);
    plan.sample[4] = Inst::DataOuterAcc { grad: TensorId(1), e: RegId(0), input: plan.inputs[0].id };
    let err = Server::new(sk, &plan).err().expect("no circular packing");
    assert!(matches!(err, TfheError::Unsupported { .. }), "{err}");

    let mut plan = head_plan(16, 5);
    plan.poly_size = 1024;
    assert!(matches!(Server::new(sk, &plan), Err(TfheError::InvalidPlan(_))));
}

#[test]
fn server_keys_file_round_trip() {
    use blindtuner_runtime::tfhe::files::{self, FileErrorKind};
    let (ck, sk) = keys();
    let dir = std::env::temp_dir().join(format!("bt-tfhe-sk-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("server.keys");
    files::save_server_keys(&path, sk).expect("save");
    let wrong = blindtuner_runtime::tfhe::ClientKey::generate(ck.params(), &mut CryptoRng::from_seed(99));
    let err = files::load_server_keys(&path, Some(wrong.fingerprint())).expect_err("other key pair");
    assert!(matches!(err.kind, FileErrorKind::WrongKey { .. }), "{err}");
    let loaded = files::load_server_keys(&path, Some(ck.fingerprint())).expect("load");
    let _ = std::fs::remove_dir_all(&dir);
    // The loaded keys bootstrap correctly.
    let plan = head_plan(16, 5);
    let server = Server::new(&loaded, &plan).expect("plan");
    let z = 3u64 << Z_SCALE; // z = 3
    let x = ck.encrypt_lwe_vec(KeyKind::Data, &[z], &mut CryptoRng::from_seed(1));
    let (out, small) = server.lut(LutId(0), &x).expect("lut");
    let (want, _) = plan.luts[0].at_index(ck.pbs_index(&small[0]), plan.poly_size);
    let got = ck.decrypt_lwe_vec(&out)[0];
    assert!(torus_diff(got, want).unsigned_abs() < PBS_NOISE_BOUND);
}

#[test]
fn learning_rate_schedule_scales_lut_outputs_and_label_terms() {
    use blindtuner_compiler::plan::{torus_shift, PlanSchedule};
    let (ck, sk) = keys();
    let mut plan = head_plan(16, 5);
    plan.luts[0].lr_scaled = true;
    if let Inst::LabelTerm { lr_scaled, .. } = &mut plan.sample[2] {
        *lr_scaled = true;
    }
    plan.train.epochs = 3;
    plan.train.schedule = Some(PlanSchedule { every: 1, shift: 1 });
    assert_eq!(plan.train.max_lr_shift(), 2);
    let mut server = Server::new(sk, &plan).expect("plan");
    let info = server.info().clone();
    let mut rng = CryptoRng::from_seed(8);
    let mut r = Rng(8);
    let model = ck.encrypt_model(&plan, &initial_model(&mut r, &plan), &mut rng).expect("model");
    let y = 2;
    let sample = ck.encrypt_sample(&plan, &info, &[features(&mut r, 16)], &[y], &mut rng).expect("sample");
    let Inst::LabelTerm { on, off, .. } = plan.sample[2] else { unreachable!("head plan layout") };
    let lut = &plan.luts[0];
    let zs: Vec<u64> = (-6i64..=6).map(|g| (g << Z_SCALE) as u64).collect();
    for epoch in [0, 2] {
        server.set_epoch(epoch);
        let shift = plan.train.lr_shift(epoch);
        // LUT outputs: the selected cell's value, shifted.
        let x = ck.encrypt_lwe_vec(KeyKind::Data, &zs, &mut rng);
        let (out, small) = server.lut(LutId(0), &x).expect("lut");
        for (g, s) in ck.decrypt_lwe_vec(&out).iter().zip(&small) {
            let (v, _) = lut.at_index(ck.pbs_index(s), plan.poly_size);
            let want = torus_shift(v, shift);
            assert!(torus_diff(*g, want).unsigned_abs() < PBS_NOISE_BOUND, "epoch {epoch}");
        }
        // Label term: encrypted at the largest shift, scaled to this epoch's.
        let prepared = server.prepare(&sample).expect("prepare");
        let run = server.run_sample(&model, &prepared, 3).expect("run");
        let label = run.regs[2].as_ref().expect("label register written");
        for (c, v) in ck.decrypt_value(label).iter().enumerate() {
            let want = torus_shift(if c == y { on } else { off }, shift);
            assert!(torus_diff(*v, want).unsigned_abs() < 1 << 40, "epoch {epoch} class {c}");
        }
    }
}
