//! GGSW conversion of a table's output on real keys (`runtime::tfhe::convert`): a
//! GGSW of `m = relu(z)` built from `levels` bootstraps of `z` multiplies a GLWE
//! exactly like a client GGSW would (decrypts to `m·W` up to noise), its noise is the
//! model's (`noise::formulas::converted_ggsw_row` through the external product formula),
//! and monomial-shifted sums are GGSWs of polynomials (one external product computes
//! every product `e_c·m_j` at coefficient `c + k·j`).

mod tfhe_common;

use blindtuner_compiler::noise::{formulas, NoiseParams};
use blindtuner_compiler::plan::{Format, Lut, LutEncoding};
use blindtuner_runtime::tfhe::convert::{self, ConvertParams};
use blindtuner_runtime::tfhe::noise_params::noise_params;
use blindtuner_runtime::tfhe::{CryptoRng, KeyKind};
use tfhe_common::{keys, Rng};

/// Cells per half torus (2^58 wide: the budget's cells at 2^-40).
const CELLS: usize = 32;
/// The product reads the table's output as an integer on this grid.
const INT_LSB: i32 = 40;
/// The format of the product's integer operand (`relu`'s output, `m` at `2^40`).
const INT_FMT: Format = Format { scale: INT_LSB, lsb: INT_LSB, range: (0.0, 16.0), proven: true };

/// `relu` over cells: `z = cell − 16` for `z ∈ [−16, 16)` (phase `cell·2^58 + 2^57`,
/// half torus), output `max(z, 0)` as the integer `m ∈ 0..16` at `2^40`.
fn relu_lut() -> Lut {
    Lut {
        name: "relu".into(),
        func: "relu(z)".into(),
        encoding: LutEncoding::HalfTorus,
        offset: 0,
        table: (0..CELLS as i64).map(|c| (c - 16).max(0)).collect(),
        out_shift: INT_LSB as u32,
        in_fmt: Format { scale: 58, lsb: 58, range: (-16.0, 16.0), proven: false },
        assumed: (-16.0, 16.0),
        window: (-16.0, 16.0),
        lr_scaled: false,
        graded: false,
    }
}

fn phase_of_cell(c: usize) -> u64 {
    ((c as u64) << 58) + (1 << 57)
}

fn signed(t: u64) -> f64 {
    t as i64 as f64
}

#[test]
fn a_converted_table_output_multiplies_like_a_ggsw_with_the_modelled_noise() {
    let (ck, sk) = keys();
    let p = ck.params();
    let n = p.n();
    let mut rng = CryptoRng::from_seed(31);
    let cp = ConvertParams::of(p);
    let ckey = ck.convert_key(cp, &mut rng);
    let lut = relu_lut();

    // Eight hidden units: cells spread over both signs of z (m = 0 for z < 0).
    let cells = [3usize, 14, 16, 17, 20, 24, 29, 31];
    let msgs: Vec<u64> = cells.iter().map(|&c| phase_of_cell(c)).collect();
    let m: Vec<i64> = cells.iter().map(|&c| (c as i64 - 16).max(0)).collect();
    let x = ck.encrypt_lwe_vec(KeyKind::Data, &msgs, &mut rng);
    let (ggsws, pbs) = convert::table_to_ggsw(sk, &ckey, &lut, &INT_FMT, &x).expect("converts");
    assert_eq!(pbs, (cells.len() * cp.ggsw.levels) as u64, "one bootstrap per value and level");

    // A weight polynomial with 2^50-sized coefficients.
    let mut r = Rng(0x5eed);
    let w: Vec<u64> = (0..n).map(|_| (r.int(-(1 << 50), 1 << 50)) as u64).collect();
    let glwe = ck.encrypt_pbs_glwe(&w, &mut rng);

    let np: NoiseParams = noise_params(p);
    let row = formulas::converted_ggsw_row(&np, np.convert_bsk, np.pks);
    let mut sum_sq = 0.0;
    let mut predicted = 0.0;
    let mut count = 0.0;
    for (g, &mi) in ggsws.iter().zip(&m) {
        let out = convert::external_product(p, g, &glwe);
        let phase = ck.pbs_glwe_phase(&out);
        for (ph, &wc) in phase.iter().zip(&w) {
            let err = signed(ph.wrapping_sub((mi as u64).wrapping_mul(wc)));
            sum_sq += err * err;
        }
        let mu2 = (mi * mi) as f64;
        predicted += n as f64 * formulas::external_product_output(&np, np.convert, row, mu2, np.glwe_var());
        count += n as f64;
    }
    let measured = sum_sq / count / 2f64.powi(128);
    let predicted = predicted / count;
    let ratio = measured / predicted;
    eprintln!(
        "converted GGSW ⊡ GLWE: measured σ 2^{:.2}, modelled 2^{:.2} (variance ratio {ratio:.2})",
        formulas::log2_std_u64(measured, 64),
        formulas::log2_std_u64(predicted, 64)
    );
    assert!((0.5..=2.0).contains(&ratio), "measured/modelled variance {ratio}");

    // A GGSW of the polynomial Σ_j m_j X^(k·j): one external product with the packed
    // errors E = Σ_c e_c X^c gives e_c·m_j at coefficient c + k·j.
    let k = 5usize;
    let mut poly = convert::zero_ggsw(p, cp);
    for (j, g) in ggsws.iter().enumerate() {
        convert::add_monomial_ggsw(&mut poly, g, (k * j) as i64);
    }
    let mut e_msg = vec![0u64; n];
    let e: Vec<i64> = (0..k).map(|_| r.int(-(1 << 44), 1 << 44)).collect();
    for (c, &ec) in e.iter().enumerate() {
        e_msg[c] = ec as u64;
    }
    let eg = ck.encrypt_pbs_glwe(&e_msg, &mut rng);
    let phase = ck.pbs_glwe_phase(&convert::external_product(p, &poly, &eg));
    let mu2: f64 = m.iter().map(|&v| (v * v) as f64).sum();
    let sigma = formulas::external_product_output(&np, np.convert, row * ggsws.len() as f64, mu2, np.glwe_var()).sqrt()
        * 2f64.powi(64);
    for (j, &mj) in m.iter().enumerate() {
        for (c, &ec) in e.iter().enumerate() {
            let err = signed(phase[c + k * j].wrapping_sub((ec * mj) as u64));
            assert!(err.abs() < 6.0 * sigma, "e_{c}·m_{j}: error 2^{:.1} vs σ 2^{:.1}", err.abs().log2(), sigma.log2());
        }
    }

    // A polynomial GGSW of 8 same-sign values — 64, 72, …, 120 at `X^j`, like a hidden
    // layer's relu activations — times uniformly random GLWEs. Its external product's
    // rounding term meets `S·μ`, whose coefficients have mean `Σμ/2`: the variance is
    // `formulas::external_product_poly`'s, ~4× what `‖μ‖²` alone gives. That part is one
    // draw per product (the mask's rounding errors summed), so the variance is pooled
    // over 48 GLWEs (the conversion, the expensive part, is shared).
    let big = Lut { table: (0..CELLS as i64).map(|c| 8 * (c - 16)).collect(), ..lut.clone() };
    let big_fmt = Format { range: (-128.0, 128.0), ..INT_FMT };
    let cells: Vec<usize> = (24..32).collect();
    let m: Vec<i64> = cells.iter().map(|&c| 8 * (c as i64 - 16)).collect();
    let x = ck.encrypt_lwe_vec(KeyKind::Data, &cells.iter().map(|&c| phase_of_cell(c)).collect::<Vec<_>>(), &mut rng);
    let (ggsws, _) = convert::table_to_ggsw(sk, &ckey, &big, &big_fmt, &x).expect("converts");
    let mut poly = convert::zero_ggsw(p, cp);
    for (j, g) in ggsws.iter().enumerate() {
        convert::add_monomial_ggsw(&mut poly, g, j as i64);
    }
    let (mut sum_sq, mut count) = (0.0, 0.0);
    for _ in 0..48 {
        let w: Vec<u64> = (0..n).map(|_| r.int(i64::MIN / 2, i64::MAX / 2) as u64).collect();
        let phase = ck.pbs_glwe_phase(&convert::external_product(p, &poly, &ck.encrypt_pbs_glwe(&w, &mut rng)));
        // The negacyclic product w(X)·Σ_j m_j X^j.
        let mut want = vec![0u64; n];
        for (j, &mj) in m.iter().enumerate() {
            for (i, &wi) in w.iter().enumerate() {
                let t = wi.wrapping_mul(mj as u64);
                let (pos, neg) = if i + j < n { (i + j, false) } else { (i + j - n, true) };
                want[pos] = if neg { want[pos].wrapping_sub(t) } else { want[pos].wrapping_add(t) };
            }
        }
        sum_sq += phase.iter().zip(&want).map(|(a, b)| signed(a.wrapping_sub(*b)).powi(2)).sum::<f64>();
        count += n as f64;
    }
    let measured = sum_sq / count / 2f64.powi(128);
    let rows = row * m.len() as f64;
    let mu2: f64 = m.iter().map(|&v| (v * v) as f64).sum();
    let sum2 = (m.iter().sum::<i64>() as f64).powi(2);
    let predicted = formulas::external_product_poly(&np, np.convert, rows, mu2, sum2) + mu2 * np.glwe_var();
    let norm_only = formulas::external_product_output(&np, np.convert, rows, mu2, np.glwe_var());
    let ratio = measured / predicted;
    eprintln!(
        "8 same-sign values (‖μ‖² 2^{:.1}, (Σμ)² 2^{:.1}): measured σ 2^{:.2}, modelled 2^{:.2} \
         (variance ratio {ratio:.2}; with ‖μ‖² alone 2^{:.2})",
        mu2.log2(),
        sum2.log2(),
        formulas::log2_std_u64(measured, 64),
        formulas::log2_std_u64(predicted, 64),
        formulas::log2_std_u64(norm_only, 64)
    );
    assert!((0.6..=1.6).contains(&ratio), "measured/modelled variance {ratio}");
    assert!(measured > 2.0 * norm_only, "the mean of S·μ counts: ‖μ‖² alone under-predicts");
}
