//! Gaussian tail probabilities for "the bootstrap read the wrong cell".
//!
//! The phase that reaches the blind rotation is the exact value plus a centred noise of
//! standard deviation `σ` (keyswitch, modulus switch and everything levelled before);
//! a cell of the lookup table is `w` wide. Two kinds of error are kept apart: landing in
//! a *neighbouring* cell (common and benign for training: a numeric error of one cell)
//! and landing *two or more* cells off (a failure, counted against `p_fail`).

/// `P(N(0,1) > x)`.
pub fn q(x: f64) -> f64 {
    0.5 * erfc(x / std::f64::consts::SQRT_2)
}

/// Complementary error function (Chebyshev fit of Numerical Recipes' `erfcc`:
/// relative error < 1.2e-7 everywhere, also deep in the tail, which is what we need
/// for probabilities like 2^-40).
pub fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98 + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * (-z * z + poly).exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

/// Probabilities of a read `σ/w` (noise std over cell width) off the right cell.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CellErrors {
    /// Landing in a neighbouring cell, averaged over a uniform position of the exact
    /// phase inside its cell.
    pub one_off: f64,
    /// Landing two or more cells off, same average.
    pub far: f64,
    /// Landing two or more cells off for an exact phase at the edge of its cell (the
    /// worst position): what the failure budget is checked against, so that it holds
    /// for any data distribution.
    pub far_worst: f64,
}

/// Points of the midpoint rule over the position inside the cell (the integrand is
/// smooth: 256 points are exact to ~1e-6 relative for σ/w ≥ 1e-3).
const POSITIONS: usize = 256;

pub fn cell_errors(sigma_over_w: f64) -> CellErrors {
    let s = sigma_over_w.max(f64::MIN_POSITIVE);
    let far_worst = q(1.0 / s) + q(2.0 / s);
    let (mut one_off, mut far) = (0.0, 0.0);
    for i in 0..POSITIONS {
        // Exact phase at u ∈ (−½, ½) cell widths from the centre.
        let u = (i as f64 + 0.5) / POSITIONS as f64 - 0.5;
        let beyond = |edge: f64| q((edge - u) / s) + q((edge + u) / s);
        let outside = beyond(0.5);
        let far_u = beyond(1.5);
        one_off += outside - far_u;
        far += far_u;
    }
    CellErrors { one_off: one_off / POSITIONS as f64, far: far / POSITIONS as f64, far_worst }
}

/// The largest `σ/w` whose worst-case far probability stays within `p_fail`.
pub fn max_sigma_over_w(p_fail: f64) -> f64 {
    // far_worst is increasing in σ: bisect on log σ.
    let (mut lo, mut hi) = (1e-6f64.ln(), 10f64.ln());
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if cell_errors(mid.exp()).far_worst > p_fail {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    lo.exp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erfc_known_values() {
        for (x, v) in [(0.0, 1.0), (1.0, 0.157_299_207), (2.0, 0.004_677_734_98), (5.0, 1.537_459_794e-12)] {
            assert!((erfc(x) / v - 1.0).abs() < 2e-7, "erfc({x}) = {} vs {v}", erfc(x));
        }
        assert!((erfc(-1.0) - (2.0 - 0.157_299_207)).abs() < 1e-7);
        assert!((q(1.959_963_985) - 0.025).abs() < 1e-8);
    }

    #[test]
    fn small_noise_one_off_is_mean_abs_over_width() {
        // For σ ≪ w the exact phase is within |e| of an edge with probability 2|e|/w·½:
        // P(one off) → E|e|/w = σ·sqrt(2/π)/w.
        let s = 0.01;
        let e = cell_errors(s);
        let expect = s * (2.0 / std::f64::consts::PI).sqrt();
        assert!((e.one_off / expect - 1.0).abs() < 0.01, "{} vs {expect}", e.one_off);
        assert!(e.far < 1e-100 && e.far_worst < 1e-100);
    }

    #[test]
    fn budget_inverts_the_tail() {
        let p = 2f64.powi(-40);
        let s = max_sigma_over_w(p);
        assert!((cell_errors(s).far_worst / p - 1.0).abs() < 1e-3);
        // Q(x) = 2^-40 at x ≈ 7.1: σ ≈ w/7.1.
        assert!((1.0 / s - 7.1).abs() < 0.1, "{}", 1.0 / s);
        assert!(cell_errors(2.0 * s).far_worst > p);
    }
}
