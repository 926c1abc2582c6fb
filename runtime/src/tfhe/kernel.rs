//! The inner loop shared by the keyswitches, `acc −= digit·key_row` over u64 lanes.

/// `acc −= digit·key`, compiled for the best vector extension the CPU
/// has. Without `-C target-cpu`, rustc targets baseline x86-64, which has no 64-bit
/// lane multiply, and this loop (the packing key alone is 4096 lanes × k × levels × N per packing) stays
/// scalar; AVX-512DQ has `vpmullq`. Runtime detection keeps one portable binary.
#[derive(Clone, Copy)]
pub(crate) enum Kernel {
    Generic,
    #[cfg(target_arch = "x86_64")]
    Avx512,
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

impl Kernel {
    pub(crate) fn detect() -> Kernel {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512dq") {
                return Kernel::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                return Kernel::Avx2;
            }
        }
        Kernel::Generic
    }

    pub(crate) fn sub_scaled(self, acc: &mut [u64], key: &[u64], digit: u64) {
        match self {
            Kernel::Generic => sub_scaled(acc, key, digit),
            // SAFETY: `detect` returned this variant only if the CPU has the features
            // the function is compiled for.
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => unsafe { sub_scaled_avx512(acc, key, digit) },
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => unsafe { sub_scaled_avx2(acc, key, digit) },
        }
    }
}

#[inline(always)]
fn sub_scaled(acc: &mut [u64], key: &[u64], digit: u64) {
    for (x, &kv) in acc.iter_mut().zip(key) {
        *x = x.wrapping_sub(kv.wrapping_mul(digit));
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq")]
unsafe fn sub_scaled_avx512(acc: &mut [u64], key: &[u64], digit: u64) {
    sub_scaled(acc, key, digit)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn sub_scaled_avx2(acc: &mut [u64], key: &[u64], digit: u64) {
    sub_scaled(acc, key, digit)
}
