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

    /// `acc −= Σ_t digits[t]·rows[t]`: the digits of one input element against its
    /// block of key rows in one pass over `acc` (one load and store of `acc` for all
    /// levels instead of one per level). Four levels (the packing keys' 9x4) have a
    /// fused kernel; other counts fall back to one pass per level. Same result, bit for
    /// bit: the sum is the same mod 2^64 in any order.
    pub(crate) fn sub_dot(self, acc: &mut [u64], rows: &[&[u64]], digits: &[u64]) {
        let ([r0, r1, r2, r3], [d0, d1, d2, d3]) = (rows, digits) else {
            for (row, &d) in rows.iter().zip(digits) {
                if d != 0 {
                    self.sub_scaled(acc, row, d);
                }
            }
            return;
        };
        let (rows, digits) = ([*r0, *r1, *r2, *r3], [*d0, *d1, *d2, *d3]);
        match self {
            Kernel::Generic => sub_dot4(acc, rows, digits),
            // SAFETY: as in `sub_scaled`.
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => unsafe { sub_dot4_avx512(acc, rows, digits) },
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => unsafe { sub_dot4_avx2(acc, rows, digits) },
        }
    }
}

#[inline(always)]
fn sub_dot4(acc: &mut [u64], [r0, r1, r2, r3]: [&[u64]; 4], [d0, d1, d2, d3]: [u64; 4]) {
    let n = acc.len().min(r0.len()).min(r1.len()).min(r2.len()).min(r3.len());
    let (acc, r0, r1, r2, r3) = (&mut acc[..n], &r0[..n], &r1[..n], &r2[..n], &r3[..n]);
    for j in 0..n {
        let s = r0[j]
            .wrapping_mul(d0)
            .wrapping_add(r1[j].wrapping_mul(d1))
            .wrapping_add(r2[j].wrapping_mul(d2))
            .wrapping_add(r3[j].wrapping_mul(d3));
        acc[j] = acc[j].wrapping_sub(s);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq")]
unsafe fn sub_dot4_avx512(acc: &mut [u64], rows: [&[u64]; 4], digits: [u64; 4]) {
    sub_dot4(acc, rows, digits)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn sub_dot4_avx2(acc: &mut [u64], rows: [&[u64]; 4], digits: [u64; 4]) {
    sub_dot4(acc, rows, digits)
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
