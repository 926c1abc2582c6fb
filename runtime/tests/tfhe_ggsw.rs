//! Client-side encodings of the tfhe backend: polynomial GGSWs (sign conventions,
//! seeded round trip, the interleaved layout), the batched packing keyswitch, keygen
//! determinism. Only secret keys here: no bootstrap key needed.

mod tfhe_common;

use blindtuner_runtime::tfhe::client::data_poly_pos;
use blindtuner_runtime::tfhe::ggsw::{
    data_polynomial, encrypt_poly_ggsw, encrypt_poly_ggsw_seeded, negacyclic_mul_small, to_fourier, Direction,
};
use blindtuner_runtime::tfhe::pack::pack_batched;
use blindtuner_runtime::tfhe::{ClientKey, CryptoRng, ParamSet};
use tfhe::core_crypto::prelude::*;
use tfhe_common::{torus_diff, Rng};

type Gen = EncryptionRandomGenerator<DefaultRandomGenerator>;

fn enc_gen(seed: u128) -> Gen {
    let mut seeder = tfhe::core_crypto::commons::generators::DeterministicSeeder::<DefaultRandomGenerator>::new(
        tfhe::core_crypto::commons::math::random::Seed(seed),
    );
    Gen::new(tfhe::core_crypto::commons::math::random::Seed(seed + 1), &mut seeder)
}

fn encrypt_glwe(key: &GlweSecretKeyOwned<u64>, p: &ParamSet, msg: Vec<u64>, g: &mut Gen) -> GlweCiphertextOwned<u64> {
    let mut ct = GlweCiphertext::new(0u64, p.glwe_size(), p.poly_size, p.modulus);
    encrypt_glwe_ciphertext(key, &mut ct, &PlaintextList::from_container(msg), p.glwe_noise, g);
    ct
}

fn phase(key: &GlweSecretKeyOwned<u64>, ct: &GlweCiphertextOwned<u64>) -> Vec<u64> {
    let mut pl = PlaintextList::new(0u64, PlaintextCount(ct.polynomial_size().0));
    decrypt_glwe_ciphertext(key, ct, &mut pl);
    pl.into_container()
}

/// `glwe ⊡ ggsw` in a fresh accumulator.
fn external_product(
    ggsw: &GgswCiphertextOwned<u64>,
    glwe: &GlweCiphertextOwned<u64>,
    p: &ParamSet,
) -> GlweCiphertextOwned<u64> {
    let fft = Fft::new(p.poly_size);
    let mut buf = ComputationBuffers::new();
    let f = to_fourier(ggsw, fft.as_view(), &mut buf);
    buf.resize(
        add_external_product_assign_mem_optimized_requirement::<u64>(p.glwe_size(), p.poly_size, fft.as_view())
            .unaligned_bytes_required(),
    );
    let mut out = GlweCiphertext::new(0u64, p.glwe_size(), p.poly_size, p.modulus);
    add_external_product_assign_mem_optimized(&mut out, &f, glwe, fft.as_view(), buf.stack());
    out
}

fn client() -> (ClientKey, ParamSet, CryptoRng) {
    let p = ParamSet::default_set();
    let mut rng = CryptoRng::from_seed(11);
    (ClientKey::generate(&p, &mut rng), p, rng)
}

#[test]
fn polynomial_ggsw_multiplies_by_its_polynomial() {
    let (ck, p, mut rng) = client();
    let key = ck.data_glwe_key();
    let n = p.n();
    let mut r = Rng(3);
    // Message at 2^52 per unit: a sign error would be off by ≥ 2^52, noise is ~2^38.
    let msg: Vec<u64> = (0..n).map(|_| (r.int(-1000, 1000) as u64) << 52).collect();
    let w = encrypt_glwe(key, &p, msg.clone(), &mut enc_gen(5));
    let mut mu = vec![0i64; n];
    mu[0] = 1;
    mu[n - 5] = -1; // X^−5
    mu[17] = 3;
    mu[n - 1] = -2; // 2·X^−1
    let expected = negacyclic_mul_small(&mu, &msg);
    let seeded = encrypt_poly_ggsw_seeded(key, &p, &mu, &mut rng).decompress_into_ggsw_ciphertext();
    let full = encrypt_poly_ggsw(key, &p, &mu, &mut rng);
    for (name, g) in [("seeded", seeded), ("full", full)] {
        let got = phase(key, &external_product(&g, &w, &p));
        let worst = got.iter().zip(&expected).map(|(a, b)| torus_diff(*a, *b).unsigned_abs()).max().unwrap_or(0);
        assert!(worst < 1 << 44, "{name}: product off by 2^{:.1}", (worst as f64).log2());
    }
}

#[test]
fn negacyclic_product_wraps_with_a_minus_sign() {
    // X^(N−1) · X = X^N = −1.
    let n = 8;
    let mut mu = vec![0i64; n];
    mu[1] = 1;
    let mut s = vec![0u64; n];
    s[n - 1] = 5;
    let out = negacyclic_mul_small(&mu, &s);
    assert_eq!(out[0], 5u64.wrapping_neg());
    assert!(out[1..].iter().all(|&v| v == 0));
}

/// Forward: coefficient r of W ⊡ GGSW(μ_f) is Σ_j W[r][j]·x_j; backward: E ⊡ GGSW(μ_b)
/// holds e_r·x_j at W's position of [r][j]. Two polynomials (d + 1 > N / k).
#[test]
fn interleaved_layout_forward_and_backward() {
    let (ck, p, mut rng) = client();
    let key = ck.data_glwe_key();
    let n = p.n();
    let (k, d_aug) = (5usize, 500usize);
    let per_poly = n / k;
    let polys = d_aug.div_ceil(per_poly);
    assert_eq!(polys, 2);
    let mut r = Rng(9);
    let x: Vec<i64> = (0..d_aug).map(|_| r.int(-32, 31)).collect();
    let w: Vec<Vec<u64>> = (0..k).map(|_| (0..d_aug).map(|_| (r.int(-3000, 3000) as u64) << 40).collect()).collect();
    let mut g = enc_gen(21);

    // Forward, summed over polynomials.
    let mut z = vec![0u64; k];
    for poly in 0..polys {
        let mut msg = vec![0u64; n];
        for (row, wr) in w.iter().enumerate() {
            for (j, &v) in wr.iter().enumerate() {
                let (pi, c) = data_poly_pos(k, per_poly, row, j);
                if pi == poly {
                    msg[c] = v;
                }
            }
        }
        let ct = encrypt_glwe(key, &p, msg, &mut g);
        let mu = data_polynomial(&x, k, per_poly, poly, Direction::Forward, n);
        let out = phase(key, &external_product(&encrypt_poly_ggsw(key, &p, &mu, &mut rng), &ct, &p));
        for (zr, o) in z.iter_mut().zip(&out) {
            *zr = zr.wrapping_add(*o);
        }
    }
    for (row, zr) in z.iter().enumerate() {
        let expected = w[row].iter().zip(&x).fold(0u64, |a, (&wv, &xv)| a.wrapping_add(wv.wrapping_mul(xv as u64)));
        let diff = torus_diff(*zr, expected).unsigned_abs();
        assert!(diff < 1 << 46, "logit {row} off by 2^{:.1}", (diff as f64).log2());
    }

    // Backward: E = Σ_r e_r X^r.
    let e: Vec<i64> = (0..k).map(|_| r.int(-256, 256)).collect();
    let mut emsg = vec![0u64; n];
    for (c, &v) in e.iter().enumerate() {
        emsg[c] = (v as u64) << 40;
    }
    let ect = encrypt_glwe(key, &p, emsg, &mut g);
    for poly in 0..polys {
        let mu = data_polynomial(&x, k, per_poly, poly, Direction::Backward, n);
        let out = phase(key, &external_product(&encrypt_poly_ggsw(key, &p, &mu, &mut rng), &ect, &p));
        for (row, &er) in e.iter().enumerate() {
            for (j, &xj) in x.iter().enumerate() {
                let (pi, c) = data_poly_pos(k, per_poly, row, j);
                if pi != poly {
                    continue;
                }
                let expected = ((er * xj) as u64) << 40;
                let diff = torus_diff(out[c], expected).unsigned_abs();
                assert!(diff < 1 << 44, "G[{row}][{j}] off by 2^{:.1}", (diff as f64).log2());
            }
        }
    }
}

#[test]
fn batched_packing_is_bit_identical_to_tfhe() {
    let p = ParamSet::default_set();
    let mut sec =
        SecretRandomGenerator::<DefaultRandomGenerator>::new(tfhe::core_crypto::commons::math::random::Seed(4));
    let from = allocate_and_generate_new_binary_glwe_secret_key(p.glwe_dim, p.poly_size, &mut sec);
    let to = allocate_and_generate_new_binary_glwe_secret_key(p.glwe_dim, p.poly_size, &mut sec);
    let mut g = enc_gen(31);
    // Bit identity does not depend on the decomposition; a 1-level key keeps the test fast.
    let pksk = allocate_and_generate_new_lwe_packing_keyswitch_key(
        &from.as_lwe_secret_key(),
        &to,
        DecompositionBaseLog(20),
        DecompositionLevelCount(2),
        p.glwe_noise,
        p.modulus,
        &mut g,
    );
    let big = from.as_lwe_secret_key();
    let mut r = Rng(5);
    let mut list = LweCiphertextList::new(0u64, big.lwe_dimension().to_lwe_size(), LweCiphertextCount(7), p.modulus);
    for mut ct in list.iter_mut() {
        encrypt_lwe_ciphertext(&big, &mut ct, Plaintext(r.next()), p.glwe_noise, &mut g);
    }
    let lwes: Vec<_> = list.iter().map(|c| LweCiphertext::from_container(c.as_ref().to_vec(), p.modulus)).collect();
    let mut theirs = GlweCiphertext::new(0u64, p.glwe_size(), p.poly_size, p.modulus);
    keyswitch_lwe_ciphertext_list_and_pack_in_glwe_ciphertext(&pksk, &list, &mut theirs);
    let mut ours = GlweCiphertext::new(0u64, p.glwe_size(), p.poly_size, p.modulus);
    pack_batched(&pksk, &lwes, &mut ours);
    assert!(theirs.as_ref() == ours.as_ref(), "packing differs from tfhe's");
}

#[test]
fn keygen_is_deterministic_from_a_seed_and_random_otherwise() {
    let p = ParamSet::default_set();
    let a = ClientKey::generate(&p, &mut CryptoRng::from_seed(1));
    let b = ClientKey::generate(&p, &mut CryptoRng::from_seed(1));
    let c = ClientKey::generate(&p, &mut CryptoRng::from_seed(2));
    assert_eq!(a.fingerprint(), b.fingerprint());
    assert_ne!(a.fingerprint(), c.fingerprint());
    // Same secret keys, not only the same id: equal GLWE keys decrypt each other's data.
    assert!(a.data_glwe_key() == b.data_glwe_key());
    let os1 = ClientKey::generate(&p, &mut CryptoRng::from_os());
    let os2 = ClientKey::generate(&p, &mut CryptoRng::from_os());
    assert_ne!(os1.fingerprint(), os2.fingerprint());
    assert_eq!(p.id().0, "bt128-n918-N2048-bsk12x3-pks9x4-ggsw10x4");
    assert_eq!(ParamSet::from_id(&p.id().0), Some(p));
}

#[test]
fn batched_keyswitch_is_bit_identical_to_tfhe() {
    use blindtuner_runtime::tfhe::keyswitch::keyswitch_batched;
    let p = ParamSet::default_set();
    let mut sec =
        SecretRandomGenerator::<DefaultRandomGenerator>::new(tfhe::core_crypto::commons::math::random::Seed(8));
    let from = allocate_and_generate_new_binary_glwe_secret_key(p.glwe_dim, p.poly_size, &mut sec);
    let to = allocate_and_generate_new_binary_lwe_secret_key(p.lwe_dim, &mut sec);
    let mut g = enc_gen(41);
    let big = from.as_lwe_secret_key();
    let ksk = allocate_and_generate_new_lwe_keyswitch_key(
        &big,
        &to,
        p.ks.base_log(),
        p.ks.level_count(),
        p.lwe_noise,
        p.modulus,
        &mut g,
    );
    let mut r = Rng(6);
    let inputs: Vec<_> = (0..5)
        .map(|_| {
            let mut ct = LweCiphertext::new(0u64, big.lwe_dimension().to_lwe_size(), p.modulus);
            encrypt_lwe_ciphertext(&big, &mut ct, Plaintext(r.next()), p.glwe_noise, &mut g);
            ct
        })
        .collect();
    let ours = keyswitch_batched(&ksk, &inputs);
    for (input, o) in inputs.iter().zip(&ours) {
        let mut theirs = LweCiphertext::new(0u64, p.lwe_dim.to_lwe_size(), p.modulus);
        keyswitch_lwe_ciphertext(&ksk, input, &mut theirs);
        assert!(theirs.as_ref() == o.as_ref(), "keyswitch differs from tfhe's");
    }
}
