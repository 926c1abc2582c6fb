//! The clear run of the lowered linear sigmoid head is bit-exact with an independent
//! integer re-implementation of the probe's `ClearModel` (reference/ggsw-probe).

mod common;

use blindtuner_compiler::lower::LowerOptions;
use blindtuner_compiler::plan::Inst;
use blindtuner_runtime::clear::Machine;
use blindtuner_runtime::rng::SplitMix;
use common::*;

/// The probe's arithmetic: x_q = clamp(round(8x), -32, 31) plus the constant 8; z =
/// Σ w·x_q << 40 (z at 2^59); E = LUT(z + 2^56) − label with s = 512, cells of 1/4.
struct Probe {
    w: Vec<Vec<i64>>,
    lut: Vec<i64>,
}

impl Probe {
    fn new(k: usize, d: usize) -> Probe {
        let s = 512.0;
        let lut = (0..64)
            .map(|g| {
                let z = g as f64 / 4.0;
                let (z, sign) = if g < 32 { (z, 1) } else { (z - 16.0, -1) };
                sign * (s * (1.0 / (1.0 + (-z).exp()) - 0.5)).round() as i64
            })
            .collect();
        Probe { w: vec![vec![0; d + 1]; k], lut }
    }
    fn quantize(x: &[f64]) -> Vec<i64> {
        let mut v: Vec<i64> = x.iter().map(|&v| ((v * 8.0).round() as i64).clamp(-32, 32)).collect();
        v.push(8);
        v
    }
    fn errors(&self, xq: &[i64], y: usize) -> Vec<i64> {
        let n = 2048usize;
        self.w
            .iter()
            .enumerate()
            .map(|(c, wc)| {
                let z = wc.iter().zip(xq).fold(0u64, |a, (&w, &x)| a.wrapping_add(w.wrapping_mul(x) as u64)) << 40;
                let ph = z.wrapping_add(1 << 56);
                let idx = ((ph as u128 + (1u128 << (63 - 12))) >> (64 - 12)) as usize % (2 * n);
                let v = if idx < n { self.lut[idx / 32] } else { -self.lut[(idx - n) / 32] };
                v - if c == y { 256 } else { -256 }
            })
            .collect()
    }
    fn update(&mut self, e: &[i64], xq: &[i64]) {
        for (wc, &ec) in self.w.iter_mut().zip(e) {
            for (w, &x) in wc.iter_mut().zip(xq) {
                *w = w.wrapping_sub(ec.wrapping_mul(x));
            }
        }
    }
}

#[test]
fn linear_sigmoid_plan_matches_probe_bit_exactly() {
    let (k, d, batch) = (5, 16, 8);
    // The probe's table has 64 cells per half torus (`precision = 7`: cells of 2^57);
    // the compiler's own choice at the default failure budget is coarser (2^58).
    let src = linear("sigmoid_cross_entropy", d, k, (-4.0, 4.0), "sgd(lr = 0.5)", batch, 1)
        .replace("  batch", "  precision = 7\n  batch");
    // Headroom 0 is the probe's layout: window = assumed = ±8 at 2^59.
    let plan = compile_with(&src, &LowerOptions { logit_headroom_bits: 0, ..LowerOptions::default() });
    assert_eq!(plan.inputs[0].scale, 3);
    assert_eq!(plan.inputs[0].one, Some(8));
    let w = &plan.tensors[0];
    assert_eq!((w.fmt.scale, w.fmt.lsb), (56, 40));
    assert_eq!(plan.regs[plan.logits.index()].fmt.scale, 59);
    let lut = &plan.luts[0];
    assert_eq!(lut.offset, 1 << 56);
    assert_eq!((lut.table.len(), lut.out_shift), (64, 40));

    // Synthetic data in [-4.5, 4.5] (some clamping) with a learnable signal.
    let mut rng = SplitMix::new(42);
    let samples: Vec<(Vec<f64>, usize)> = (0..400)
        .map(|_| {
            let y = rng.below(k);
            let x = (0..d).map(|j| rng.uniform(-2.0, 2.0) + if j % k == y { 2.5 } else { 0.0 }).collect();
            (x, y)
        })
        .collect();
    let mut probe = Probe::new(k, d);
    let mut m = Machine::new(&plan);
    let (z_fmt, w_lsb) = (plan.regs[plan.logits.index()].fmt, w.fmt.lsb);
    let e_reg = plan.sample.iter().rev().find_map(|i| match i {
        Inst::DataOuterAcc { e, .. } => Some(*e),
        _ => None,
    });
    let e_reg = e_reg.expect("the error feeds the gradient");
    let mut max_z: f64 = 0.0;
    for batch_samples in samples.chunks(batch) {
        let mut pending = vec![];
        for (x, y) in batch_samples {
            let q = m.quantize(&[x], &[*y]);
            assert_eq!(q.xq[0], Probe::quantize(x));
            m.run_sample(&q);
            let e = probe.errors(&q.xq[0], *y);
            let got: Vec<i64> = m.reg(e_reg).iter().map(|&t| (t as i64) >> w_lsb).collect();
            assert_eq!(got, e, "errors differ");
            max_z = m.reg(plan.logits).iter().fold(max_z, |a, &t| a.max(z_fmt.to_real(t).abs()));
            pending.push((e, q.xq[0].clone()));
        }
        m.run_step();
        for (e, xq) in pending {
            probe.update(&e, &xq);
        }
        let ours: Vec<i64> = m.tensors[0].iter().map(|&t| (t as i64) >> w_lsb).collect();
        let theirs: Vec<i64> = probe.w.iter().flatten().copied().collect();
        assert_eq!(ours, theirs, "weights differ");
    }
    assert!(max_z > 1.0, "the test exercises the table away from 0 (max |z| = {max_z})");
    assert!(m.counters.total_clamped() > 0, "some features clamped and counted");
}
