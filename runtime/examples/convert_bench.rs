//! Cost of converting a table's output to GGSW (`runtime::tfhe::convert`, the MLP's
//! `table-ggsw` lowering) on this machine: one hidden layer's activations (H values),
//! one thread, against the reference PBS.
//!
//! `cargo run --release -p blindtuner-runtime --example convert_bench [H]`

use blindtuner_compiler::plan::{Format, Lut, LutEncoding};
use blindtuner_runtime::tfhe::convert::{self, ConvertParams};
use blindtuner_runtime::tfhe::{keygen, CryptoRng, KeyKind, ParamSet};
use std::time::Instant;

fn main() {
    let h: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(16);
    let reference = blindtuner_runtime::tfhe::bench::reference_pbs_seconds(10);
    println!("reference_pbs_seconds = {reference:.5} (stock 2_2 KS-PBS, shortint, 1 thread)");
    let params = ParamSet::default_set();
    let mut rng = CryptoRng::from_os();
    let (ck, sk) = keygen(&params, &mut rng);
    let cp = ConvertParams::of(&params);
    let t = Instant::now();
    let ckey = ck.convert_key(cp, &mut rng);
    println!(
        "convert keys (bsk {}x{}, pfks {}x{}): {:.1} s",
        cp.bsk.base_log,
        cp.bsk.levels,
        cp.pfks.base_log,
        cp.pfks.levels,
        t.elapsed().as_secs_f64()
    );

    let lut = Lut {
        name: "relu".into(),
        func: "relu(z)".into(),
        encoding: LutEncoding::HalfTorus,
        offset: 0,
        table: (0..32).map(|c: i64| (c - 16).max(0)).collect(),
        out_shift: 40,
        in_fmt: Format { scale: 58, lsb: 58, range: (-16.0, 16.0), proven: false },
        assumed: (-16.0, 16.0),
        window: (-16.0, 16.0),
        lr_scaled: false,
        graded: false,
    };
    // relu's output as the product reads it: integers 0..16 at 2^40.
    let int_fmt = Format { scale: 40, lsb: 40, range: (0.0, 16.0), proven: true };
    let msgs: Vec<u64> = (0..h).map(|j| (((j % 32) as u64) << 58) + (1 << 57)).collect();
    let x = ck.encrypt_lwe_vec(KeyKind::Data, &msgs, &mut rng);
    let t = Instant::now();
    let (ggsws, pbs) = convert::table_to_ggsw(&sk, &ckey, &lut, &int_fmt, &x).expect("converts");
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{h} values → GGSW {}x{}: {pbs} PBS, {:.3} s ({:.1} ms per value = {:.1}× the reference PBS per value)",
        cp.ggsw.base_log,
        cp.ggsw.levels,
        secs,
        1e3 * secs / h as f64,
        secs / h as f64 / reference
    );
    let mut poly = convert::zero_ggsw(&params, cp);
    let t = Instant::now();
    for (j, g) in ggsws.iter().enumerate() {
        convert::add_monomial_ggsw(&mut poly, g, (5 * j) as i64);
    }
    println!("sum of {h} monomial-shifted GGSWs: {:.1} ms", 1e3 * t.elapsed().as_secs_f64());
    let glwe = ck.encrypt_pbs_glwe(&vec![0u64; params.n()], &mut rng);
    let t = Instant::now();
    let _ = convert::external_product(&params, &poly, &glwe);
    println!("one external product with it (incl. Fourier conversion): {:.1} ms", 1e3 * t.elapsed().as_secs_f64());
}
