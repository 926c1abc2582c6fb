//! The noise model against real ciphertexts: for each lowered operation, the variance
//! measured over many coefficients (decrypt, subtract the exact value) is within a
//! factor of 2 of `blindtuner_compiler::noise::formulas`.
//!
//! Sizes are small enough for < 60 s on 2 cores: 1000 bootstraps (keyswitch, modulus
//! switch, PBS output and the one-cell-off rate measured on the same ciphertexts), 100 data external products
//! × 2048 coefficients, 50 packings of 5 LWEs × 2048 coefficients.

mod tfhe_common;

use blindtuner_compiler::noise::formulas::{self as f, log2_std_u64};
use blindtuner_compiler::noise::tail::cell_errors;
use blindtuner_compiler::noise::NoiseParams;
use blindtuner_compiler::plan::LutId;
use blindtuner_runtime::tfhe::ggsw::{data_polynomial, encrypt_poly_ggsw, negacyclic_mul_small, to_fourier, Direction};
use blindtuner_runtime::tfhe::noise_params::noise_params;
use blindtuner_runtime::tfhe::pack::pack_batched;
use blindtuner_runtime::tfhe::{CryptoRng, KeyKind, Server};
use tfhe::core_crypto::prelude::*;
use tfhe_common::{features, fresh_pbs_input_sigma, head_plan, keys, landings, torus_diff, Rng};

/// Torus variance (fraction², the model's unit) of signed u64 differences.
fn variance(diffs: impl IntoIterator<Item = i64>) -> f64 {
    let (mut n, mut s, mut s2) = (0f64, 0f64, 0f64);
    for d in diffs {
        let x = d as f64 / 2f64.powi(64);
        n += 1.0;
        s += x;
        s2 += x * x;
    }
    let mean = s / n;
    s2 / n - mean * mean
}

fn check(what: &str, measured: f64, predicted: f64) {
    let ratio = measured / predicted;
    println!(
        "{what:<40} measured 2^{:.2}  predicted 2^{:.2}  (variance ratio {ratio:.2})",
        log2_std_u64(measured, 64),
        log2_std_u64(predicted, 64)
    );
    assert!((0.5..=2.0).contains(&ratio), "{what}: measured/predicted variance = {ratio}");
}

fn params() -> NoiseParams {
    noise_params(keys().0.params())
}

#[test]
fn keyswitch_modulus_switch_and_pbs() {
    let (ck, sk) = keys();
    let np = params();
    let plan = head_plan(64, 5);
    let server = Server::new(sk, &plan).expect("plan accepted");
    let lut = &plan.luts[0];
    let n = ck.params().n();
    let mut rng = Rng(0x5eed);
    let mut crng = CryptoRng::from_seed(11);
    // Logits anywhere in the window z ∈ [−8, 8) (2^59 per unit).
    let msgs: Vec<u64> = (0..1000).map(|_| (rng.int(-(1 << 20), (1 << 20) - 1) as u64) << 42).collect();
    let input = ck.encrypt_lwe_vec(KeyKind::Data, &msgs, &mut crng);
    let (out, small) = server.lut(LutId(0), &input).expect("bootstrap");

    let ks = small
        .iter()
        .zip(&msgs)
        .map(|(ct, &m)| torus_diff(ck.decrypt_lwe(KeyKind::Small, ct), m.wrapping_add(lut.offset)));
    check(
        "keyswitch 2048 → 918 (4/4) + fresh",
        variance(ks),
        np.glwe_var() + f::keyswitch(&np, 2048, np.ks, np.lwe_var()),
    );

    // The index the blind rotation used, back on the torus, minus the small-key phase.
    let ms = small.iter().map(|ct| {
        torus_diff((ck.pbs_index(ct) as u64) << (64 - (2 * n).trailing_zeros()), ck.decrypt_lwe(KeyKind::Small, ct))
    });
    check("modulus switch to 2N", variance(ms), f::pbs_modulus_switch(&np));

    let pbs = out.cts.iter().zip(&small).map(|(ct, s)| {
        let (expected, _) = lut.at_index(ck.pbs_index(s), n);
        torus_diff(ck.decrypt_lwe(KeyKind::Pbs, ct), expected)
    });
    check(&format!("PBS output (BSK {:?})", np.bsk), variance(pbs), f::pbs(&np, np.bsk));

    // Where the bootstraps landed, against the noise-free cell of each message.
    let cells = 2 * lut.table.len();
    let landed = landings(ck, lut, &small, &msgs);
    let (one, far) = (landed.one_off, landed.far);
    let predicted = cell_errors(fresh_pbs_input_sigma(&np) * cells as f64);
    let rate = one as f64 / msgs.len() as f64;
    println!(
        "one cell off: {one} of {} ({rate:.3}), predicted {:.3}; further: {far}, predicted {:.1e}",
        msgs.len(),
        predicted.one_off,
        predicted.far
    );
    assert!((predicted.one_off / 3.0..=predicted.one_off * 3.0).contains(&rate), "one-cell-off rate {rate}");
    assert_eq!(far, 0, "predicted {:.1e} per bootstrap", predicted.far);
}

#[test]
fn data_external_product() {
    let (ck, _) = keys();
    let np = params();
    let p = ck.params();
    let key = ck.data_glwe_key();
    let mut rng = Rng(0xe7);
    let mut crng = CryptoRng::from_seed(12);
    let fft = Fft::new(p.poly_size);
    let mut buf = ComputationBuffers::new();
    let (mut diffs, mut predicted) = (Vec::new(), 0.0);
    let count = 100;
    for _ in 0..count {
        // The probe's forward polynomial: d = 64 features in [−32, 31] + the constant 8, k = 5.
        let xq: Vec<i64> = features(&mut rng, 64).into_iter().chain([8]).collect();
        let mu = data_polynomial(&xq, 5, 409, 0, Direction::Forward, p.n());
        let norm2: f64 = mu.iter().map(|&m| (m * m) as f64).sum();
        predicted += f::external_product(&np, np.ggsw, np.glwe_var(), norm2) / count as f64;
        let ggsw = to_fourier(&encrypt_poly_ggsw(key, p, &mu, &mut crng), fft.as_view(), &mut buf);
        // A uniformly random GLWE: its phase is a random message with no noise to track.
        let mut glwe = GlweCiphertext::new(0u64, p.glwe_size(), p.poly_size, p.modulus);
        glwe.as_mut().iter_mut().for_each(|c| *c = rng.next());
        let mut out = GlweCiphertext::new(0u64, p.glwe_size(), p.poly_size, p.modulus);
        buf.resize(
            add_external_product_assign_mem_optimized_requirement::<u64>(p.glwe_size(), p.poly_size, fft.as_view())
                .unaligned_bytes_required(),
        );
        add_external_product_assign_mem_optimized(&mut out, &ggsw, &glwe, fft.as_view(), buf.stack());
        let expected = negacyclic_mul_small(&mu, &ck.glwe_phase(&glwe));
        diffs.extend(ck.glwe_phase(&out).iter().zip(&expected).map(|(&o, &e)| torus_diff(o, e)));
    }
    check(&format!("data external product (GGSW {:?})", np.ggsw), variance(diffs), predicted);
}

#[test]
fn packing_keyswitch() {
    let (ck, sk) = keys();
    let np = params();
    let p = ck.params();
    let mut rng = Rng(0xbac);
    let mut crng = CryptoRng::from_seed(13);
    let k = 5;
    let (mut own, mut others) = (Vec::new(), Vec::new());
    for _ in 0..50 {
        let msgs: Vec<u64> = (0..k).map(|_| rng.next()).collect();
        let lwes = ck.encrypt_lwe_vec(KeyKind::Pbs, &msgs, &mut crng);
        let mut out = GlweCiphertext::new(0u64, p.glwe_size(), p.poly_size, p.modulus);
        pack_batched(sk.packing_keyswitch_key(), &lwes.cts, &mut out);
        for (c, &ph) in ck.glwe_phase(&out).iter().enumerate() {
            match msgs.get(c) {
                Some(&m) => own.push(torus_diff(ph, m)),
                None => others.push(torus_diff(ph, 0)),
            }
        }
    }
    let dim = p.big_lwe_dim().0;
    check(
        &format!("packing KS ×{k} ({:?}), coefficients < k", np.pks),
        variance(own),
        np.glwe_var() + f::packing_keyswitch(&np, dim, np.pks, np.glwe_var(), k),
    );
    check(
        &format!("packing KS ×{k} ({:?}), other coefficients", np.pks),
        variance(others),
        f::packing_keyswitch_key(dim, np.pks, np.glwe_var(), k),
    );
}
