//! Lookup tables from real functions.
//!
//! A table reads the input phase `t + offset` modulus-switched to `2N` positions; the
//! first `N` positions read `table[cell]`, the second `N` the negation (negacyclic).
//! Two ways to live with that:
//! * [`full_torus`]: the function is odd (e.g. `sigmoid − ½`, the `½` moved into the
//!   client's label term), so the negacyclic half is the negative inputs: the whole
//!   torus is used and no padding bit is spent. The window is half the torus;
//!   beyond it the table mirrors (`F(2H − z)`), which for a saturating function stays
//!   near the saturated value instead of flipping sign.
//! * [`half_torus`]: any function; the window is half the torus, placed over the
//!   assumed range, and cells between the assumed range and the window edge saturate
//!   (hold the value at the nearest assumed bound). Only inputs beyond the window wrap.

use crate::plan::{Format, Lut, LutEncoding};

/// What to tabulate: `f` returns the table value in output integer units (before
/// rounding); the output torus value is `round(f) << out_shift`.
pub struct TableFn<'a> {
    pub name: String,
    pub func: String,
    pub f: &'a dyn Fn(f64) -> f64,
    pub in_fmt: Format,
    pub assumed: (f64, f64),
    pub out_shift: u32,
}

fn cells_for(width: f64, resolution: f64, n: usize) -> usize {
    let want = (width / resolution).max(1.0).log2().ceil().max(0.0) as u32;
    (1usize << want.min(62)).min(n)
}

/// Odd function over the full torus with cells of (at most) `resolution` real units.
/// The window is `[−H, H)` with `2H = 2^(63 − scale)`; `f` itself should saturate
/// outside the assumed range if that is narrower.
pub fn full_torus(t: &TableFn<'_>, resolution: f64, n: usize) -> Lut {
    let h2 = (63 - t.in_fmt.scale) as f64; // log2 of the half-torus width in real units
    let width = h2.exp2();
    let cells = cells_for(width, resolution, n);
    let cell = width / cells as f64;
    let table = (0..cells)
        .map(|g| {
            let u = g as f64 * cell;
            // The second half of the cells serves z ∈ [−H, 0) through the negacyclic
            // negation (−table[g] = F(u − 2H)), hence table[g] = −F(u − 2H).
            let v = if u < width / 2.0 { (t.f)(u) } else { -(t.f)(u - width) };
            v.round() as i64
        })
        .collect();
    Lut {
        name: t.name.clone(),
        func: t.func.clone(),
        encoding: LutEncoding::FullTorus,
        offset: half_cell(t.in_fmt.scale, cell),
        table,
        out_shift: t.out_shift,
        in_fmt: t.in_fmt,
        assumed: t.assumed,
        window: (-width / 2.0, width / 2.0),
        lr_scaled: false,
        graded: false,
    }
}

/// `l` for an input that reads the negacyclic half on purpose (a gate or a label term
/// adds half the torus to it): no phase is a wrap, so the window and the assumed range
/// are the whole torus, `[−2H, 2H)` in real units, and the clear backend's range
/// counters see nothing here (they count on a table reading the unfolded input).
pub fn folded(l: Lut) -> Lut {
    let w = ((63 - l.in_fmt.scale) as f64).exp2();
    Lut { window: (-w, w), assumed: (-w, w), ..l }
}

/// Any function: window of half the torus centred on the assumed range (cell-aligned).
pub fn half_torus(t: &TableFn<'_>, resolution: f64, n: usize) -> Lut {
    let width = ((63 - t.in_fmt.scale) as f64).exp2();
    let cells = cells_for(width, resolution, n);
    let cell = width / cells as f64;
    let centre = (t.assumed.0 + t.assumed.1) / 2.0;
    let lo = ((centre - width / 2.0) / cell).round() * cell;
    let table =
        (0..cells).map(|g| (t.f)((lo + g as f64 * cell).clamp(t.assumed.0, t.assumed.1)).round() as i64).collect();
    // Phase 0 of the table is the real value `lo`; half a cell centres each cell.
    let shift = ((-lo) * (t.in_fmt.scale as f64).exp2()).round() as i64 as u64;
    Lut {
        name: t.name.clone(),
        func: t.func.clone(),
        encoding: LutEncoding::HalfTorus,
        offset: shift.wrapping_add(half_cell(t.in_fmt.scale, cell)),
        table,
        out_shift: t.out_shift,
        in_fmt: t.in_fmt,
        assumed: t.assumed,
        window: (lo, lo + width),
        lr_scaled: false,
        graded: false,
    }
}

fn half_cell(scale: i32, cell: f64) -> u64 {
    (cell / 2.0 * (scale as f64).exp2()).round() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(scale: i32) -> Format {
        Format { scale, lsb: 40, range: (-8.0, 8.0), proven: false }
    }

    #[test]
    fn probe_sigmoid_table() {
        // The probe's table: s = 512, z at 2^59, cells of 1/4, N = 2048.
        let f = |z: f64| 512.0 * (1.0 / (1.0 + (-z).exp()) - 0.5);
        let t =
            TableFn { name: "e".into(), func: "".into(), f: &f, in_fmt: fmt(59), assumed: (-8.0, 8.0), out_shift: 40 };
        let lut = full_torus(&t, 0.25, 2048);
        assert_eq!(lut.table.len(), 64);
        assert_eq!(lut.offset, 1 << 56);
        for g in 0..64 {
            let z = g as f64 / 4.0;
            let (z, sign) = if g < 32 { (z, 1) } else { (z - 16.0, -1) };
            assert_eq!(lut.table[g], sign * f(z).round() as i64, "cell {g}");
        }
        // z = -1 reads F(-1) through the negacyclic half.
        let t_neg = (-(1i64 << 59)) as u64;
        let (v, _) = lut.eval(t_neg, 2048);
        assert_eq!((v as i64) >> 40, f(-1.0).round() as i64);
        // z = 9 (beyond the assumed 8) mirrors to F(7): still saturated.
        let (v, _) = lut.eval(9u64 << 59, 2048);
        assert_eq!((v as i64) >> 40, f(7.0).round() as i64);
    }

    #[test]
    fn half_torus_saturates_inside_window_and_wraps_outside() {
        let f = |z: f64| 64.0 * z;
        let t =
            TableFn { name: "r".into(), func: "".into(), f: &f, in_fmt: fmt(58), assumed: (-4.0, 4.0), out_shift: 0 };
        let lut = half_torus(&t, 1.0 / 16.0, 2048);
        assert_eq!(lut.window, (-16.0, 16.0));
        let at = |z: f64| lut.eval(((z * 2f64.powi(58)).round() as i64) as u64, 2048).0 as i64;
        assert_eq!(at(1.0), 64);
        assert_eq!(at(-2.5), -160);
        assert_eq!(at(6.0), 256, "saturates at the assumed bound");
        assert_eq!(at(-15.0), -256);
        // Beyond the window the phase lands in the negacyclic half: −table.
        assert_eq!(at(17.0), 256, "wraps to -f(-15) = 256");
    }
}

/// Narrowest lookup-table cell the bootstrap noise allows, `log2` in torus units
/// (2^-64): the noise floor of every bootstrap input is the keyswitch to the small key
/// plus the modulus switch to 2N (the input register's own noise is far below it for
/// these plans), and half a cell must exceed it by `margin_bits`.
pub fn min_cell_log2(margin_bits: f64) -> i32 {
    use crate::noise::formulas::{keyswitch, log2_std_u64, pbs_modulus_switch};
    use crate::noise::params::NoiseParams;
    let p = NoiseParams::DEFAULT;
    let floor = keyswitch(&p, p.big_lwe_dim(), p.ks, p.lwe_var()) + pbs_modulus_switch(&p);
    (log2_std_u64(floor, p.modulus_log2) + margin_bits + 1.0).ceil() as i32
}

/// Bootstraps the failure budget is spread over: the plan does not know the run's
/// length, so the budget per bootstrap is `p_fail / 2 / HORIZON_PBS` (2^32 bootstraps:
/// thousands of epochs of the heads here; the other half of `p_fail` is the weights').
pub const HORIZON_PBS: f64 = 4_294_967_296.0;

/// The narrowest cell (`log2`, torus units) whose bootstrap lands two or more cells
/// off with probability at most `p_far` even for a phase at the edge of its cell, and
/// never narrower than [`min_cell_log2`]`(margin_floor)`. This is the precision choice
/// of a table: a bootstrap costs the same for any cell count, so the finest that keeps
/// the budget. At the default budget (2^-40) the noise floor σ 2^54.7 needs 2^58-wide
/// cells: 32 per half torus, one cell off ≈ 8 % of the time, further ≈ 1e-23.
/// `key_parts`: the input is a sum over that many keys, each keyswitched on its own
/// (`noise::sim::key_parts`; a softmax's leave-one-out lse's are two).
pub fn cell_for_budget(p_far: f64, margin_floor: f64, key_parts: u32) -> i32 {
    use crate::noise::formulas::{keyswitch, pbs_modulus_switch};
    use crate::noise::params::NoiseParams;
    use crate::noise::tail::cell_errors;
    let p = NoiseParams::DEFAULT;
    let ks = keyswitch(&p, p.big_lwe_dim(), p.ks, p.lwe_var()) * f64::from(key_parts.max(1));
    let sigma = (ks + pbs_modulus_switch(&p)).sqrt();
    let fits = |c: i32| cell_errors(sigma / f64::from(c - 64).exp2()).far_worst <= p_far;
    (min_cell_log2(margin_floor)..62).find(|&c| fits(c)).unwrap_or(62)
}

#[cfg(test)]
mod noise_floor_tests {
    #[test]
    fn the_noise_floor_allows_64_cells_per_half_torus() {
        // σ = 2^54.70 (keyswitch 2^52.98 + modulus switch 2^54.63): with ≥ 1.25 bits of
        // margin the narrowest cell is 2^57 (half cell 2^56: 1.30 bits above σ).
        assert_eq!(super::min_cell_log2(1.25), 57);
        assert_eq!(super::min_cell_log2(2.0), 58);
    }

    #[test]
    fn the_failure_budget_sets_the_cell() {
        use super::{cell_for_budget, HORIZON_PBS};
        // 2^-40 over 2^32 bootstraps: 2^57 cells land further ~3e-7 at the edge, 2^58 ~1e-23.
        assert_eq!(cell_for_budget(2f64.powi(-41) / HORIZON_PBS, 1.25, 1), 58);
        // A budget of 1e-6 per bootstrap is met by 2^57 cells at the centre but not the edge.
        assert_eq!(cell_for_budget(1e-6, 1.25, 1), 57);
        assert_eq!(cell_for_budget(1e-30, 1.25, 1), 59);
        // Two keyswitched parts (σ 2^54.77): 2^58 cells land further 2.3e-21 at the edge,
        // over 2^-40 spread on 2^32 bootstraps, within 2^-35.
        assert_eq!(cell_for_budget(2f64.powi(-41) / HORIZON_PBS, 1.25, 2), 59);
        assert_eq!(cell_for_budget(2f64.powi(-36) / HORIZON_PBS, 1.25, 2), 58);
    }
}
