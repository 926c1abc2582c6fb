//! A fixed FFT algorithm, so that ciphertexts computed in different processes are
//! bit-identical.
//!
//! tfhe builds its FFT plan on first use with `Method::Measure`: it times the candidate
//! algorithms (radix 2/4/8/16, DIF/DIT, base sizes 512 and 1024) and keeps the fastest.
//! Under load the winner changes from one process to the next, and the algorithms round
//! differently (≈ 95 % of the values of a forward + inverse transform differ in their
//! low bits between Dif4/1024, Dif4/512 and Dif8/1024). External products and bootstraps
//! round the inverse transform to integers, so a different plan gives different
//! ciphertext low bits — and a run resumed in a new process would not reproduce the
//! uninterrupted one. We pin the algorithm the measurement picks on an idle x86-64
//! (radix-4 DIF on a base of 1024, also tfhe's `experimental-force_fft_algo_dif4`).
//!
//! The plan must be pinned before anything in the process creates Fourier-domain data
//! (the bootstrap key is deserialized into the plan's permuted order): key generation,
//! key loading and [`Server::new`](super::Server::new) call [`pin`] first. Bit-identity
//! also assumes the same SIMD level (AVX-512 vs AVX2 kernels round differently), i.e. a
//! resume on the same kind of machine.

use std::collections::BTreeSet;
use std::sync::Mutex;
use tfhe::core_crypto::fft_impl::fft64::math::fft::setup_custom_fft_plan;
use tfhe::core_crypto::prelude::PolynomialSize;
use tfhe_fft::ordered::FftAlgo;
use tfhe_fft::unordered::{Method, Plan};

static PINNED: Mutex<BTreeSet<usize>> = Mutex::new(BTreeSet::new());

/// Install the fixed plan for polynomials of `size` (once per process; later calls are
/// no-ops, so Fourier data created after the first call stays valid).
pub fn pin(size: PolynomialSize) {
    let mut pinned = PINNED.lock().unwrap_or_else(|e| e.into_inner());
    if pinned.insert(size.0) {
        let fourier = size.0 / 2;
        let method = Method::UserProvided { base_algo: FftAlgo::Dif4, base_n: fourier.min(1024) };
        setup_custom_fft_plan(Plan::new(fourier, method));
    }
}

/// [`pin`] the polynomial size of every parameter set this build knows (before reading
/// a key file, whose parameters are not known yet).
pub fn pin_all() {
    for p in super::params::ParamSet::all() {
        pin(p.poly_size);
    }
}
