//! Human-readable rendering of a [`Report`]: aligned tables, one line per node.

use super::{FormatRow, Report};
use crate::noise::Decision;
use std::fmt::Write;

pub fn render_text(r: &Report) -> String {
    let mut s = String::new();
    let dims: Vec<String> = r.dims.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let _ = writeln!(s, "model {}  ({})", r.model, dims.join(", "));
    let _ = writeln!(s, "train: {} lr={} batch={} epochs={}", r.optimizer, r.lr, r.batch, r.epochs);
    if r.average > 0 {
        let _ = writeln!(
            s,
            "model: mean of the weights after every step of the last {} epoch(s) (server: levelled additions, \
             no PBS; data owner: divides after decryption)",
            r.average.min(r.epochs)
        );
    }
    let _ = writeln!(s);
    let header =
        ["node", "phase", "name", "op", "shape", "format", "range", "σ", "margin", "lowering", "PBS", "depth", "line"];
    let rows: Vec<Vec<String>> = r
        .nodes
        .iter()
        .map(|n| {
            vec![
                n.id.clone(),
                n.phase.to_string(),
                n.name.clone(),
                n.op.clone(),
                shape(&n.shape),
                n.format.as_ref().map_or("-".into(), format),
                n.format.as_ref().map_or("-".into(), range),
                n.noise_log2_std.map_or("-".into(), |v| format!("2^{v:.1}")),
                n.margin_bits.map_or("-".into(), |v| format!("{v:+.1}")),
                n.lowering.to_string(),
                n.pbs.to_string(),
                n.pbs_depth.to_string(),
                n.line.map_or("-".into(), |l| l.to_string()),
            ]
        })
        .collect();
    table(&mut s, &header, &rows, &[7, 8, 10, 11, 12]);
    let _ = writeln!(
        s,
        "  σ: noise at the first step (an update: after it); margin: bits from σ to half a cell of the bootstrap that\n  \
         reads the value (after its keyswitch and modulus switch) or to half its format's LSB (negative: low bits are noise)"
    );
    let _ = writeln!(s);
    let _ = writeln!(s, "totals");
    let totals = [
        ("pbs_per_sample", r.pbs_per_sample.to_string()),
        ("pbs_per_inference", r.pbs_per_inference.to_string()),
        ("pbs_per_update", r.pbs_per_update.to_string()),
        (
            "pbs_per_step",
            format!("{} (batch {} × {} + {})", r.pbs_per_step, r.batch, r.pbs_per_sample, r.pbs_per_update),
        ),
        (
            "refresh_pbs_per_step",
            if r.refresh_pbs_per_step > 0.0 {
                format!("{:.1} (amortized: see the noise budget)", r.refresh_pbs_per_step)
            } else {
                "0 (no refresh scheduled)".into()
            },
        ),
        (
            "loss_pbs_per_measured_sample",
            match &r.loss_measurement {
                Some(l) => format!(
                    "{} (training loss under encryption, on every {}. step's samples: +{:.1} % PBS)",
                    l.pbs_per_sample,
                    l.every,
                    100.0 * l.extra
                ),
                None => "- (no encrypted loss for this loss function yet)".into(),
            },
        ),
        ("external_products_per_sample", r.external_products_per_sample.to_string()),
        ("external_products_per_step", r.external_products_per_step.to_string()),
        ("pbs_depth", r.pbs_depth.to_string()),
    ];
    for (k, v) in totals {
        let _ = writeln!(s, "  {k:<30} {v}");
    }
    if !r.products.is_empty() {
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "products of two server values (lowering chosen per product; force one with --lowering NODE=STRATEGY)"
        );
        let pbs = |a: &crate::lower::products::Alternative| a.pbs.map_or("-".to_string(), |p| p.to_string());
        let header = [
            "node",
            "name",
            "lowering",
            "PBS",
            "square",
            "bivariate",
            "ggsw",
            "table-ggsw",
            "why (of the chosen; - : cannot work)",
        ];
        let rows: Vec<Vec<String>> = r
            .products
            .iter()
            .map(|p| {
                let alt = |k: usize| p.alternatives.get(k).map_or("-".to_string(), pbs);
                let why =
                    p.alternatives.iter().find(|a| a.strategy == p.chosen).map_or(String::new(), |a| a.why.clone());
                let impossible: Vec<String> = p
                    .alternatives
                    .iter()
                    .filter(|a| a.pbs.is_none())
                    .map(|a| format!("{}: {}", a.strategy.name(), a.why))
                    .collect();
                let why = if impossible.is_empty() { why } else { format!("{why}; {}", impossible.join("; ")) };
                vec![
                    format!("s{}", p.inst),
                    p.name.clone(),
                    format!("{}{}", p.chosen.name(), if p.forced { " (forced)" } else { "" }),
                    p.pbs.to_string(),
                    alt(0),
                    alt(1),
                    alt(2),
                    alt(3),
                    why,
                ]
            })
            .collect();
        table(&mut s, &header, &rows, &[3, 4, 5, 6, 7]);
        for p in r.products.iter().filter(|p| p.forced) {
            let best = p.alternatives.iter().filter_map(|a| a.pbs.map(|x| (x, a.strategy))).min_by_key(|b| b.0);
            if let Some((b, strat)) = best.filter(|(b, _)| *b < p.pbs) {
                let _ = writeln!(
                    s,
                    "  s{}: forced `{}` costs {} PBS per sample more than `{}` ({} vs {b})",
                    p.inst,
                    p.chosen.name(),
                    p.pbs - b,
                    strat.name(),
                    p.pbs
                );
            }
        }
        let _ = writeln!(
            s,
            "  a bootstrap reads {} input bits here (the finest table's cells); a GGSW conversion is paid once per register",
            r.bootstrap_input_bits
        );
    }
    if !r.luts.is_empty() {
        let _ = writeln!(s);
        let _ = writeln!(s, "lookup tables");
        let rows: Vec<Vec<String>> = r
            .luts
            .iter()
            .map(|l| {
                vec![
                    l.name.clone(),
                    l.func.clone(),
                    l.cells.to_string(),
                    format!("{}", l.resolution),
                    l.encoding.to_string(),
                    pair(l.assumed),
                    pair(l.window),
                    format!("2^{:.1}", l.input_log2_std),
                    format!("{:+.1}", l.margin_bits),
                    format!("{:.3}", l.p_one_cell_off),
                    format!("{:.1e}", l.p_far),
                ]
            })
            .collect();
        table(
            &mut s,
            &[
                "lut",
                "function",
                "cells",
                "cell width",
                "encoding",
                "assumed input",
                "window",
                "input σ",
                "margin (bits)",
                "P(1 cell off)",
                "P(further)",
            ],
            &rows,
            &[2, 3, 7, 8, 9, 10],
        );
        for l in &r.luts {
            let keys: Vec<String> = l.out_log2_std.iter().map(|(k, v)| format!("2^{v:.1} with bsk {k}")).collect();
            let _ = writeln!(
                s,
                "  {} output: largest |value| 2^{:.1} (first epoch), 2^{:.1} (last epoch); bootstrap noise σ {}",
                l.name,
                l.out_log2_max,
                l.out_log2_max_last,
                keys.join(", ")
            );
        }
        key_choice(&mut s, &r.key);
        let worst = r.luts.iter().filter(|l| !l.graded).map(|l| l.p_far).fold(0.0, f64::max);
        let _ = writeln!(
            s,
            "  noise: tfhe's formulas for the chosen parameter set, at the first step; one cell off is a numeric \
             error, further off is a failure"
        );
        if worst > 1e-6 {
            let _ = writeln!(
                s,
                "  warning: some tables are finer than the bootstrap noise allows (P(further) > 1e-6): \
                 they need coarser cells to train encrypted"
            );
        }
    }
    {
        let f = &r.failure;
        let mut seen = std::collections::BTreeSet::new();
        for l in r.luts.iter().filter(|l| seen.insert(l.name.as_str())) {
            if l.graded {
                let _ = writeln!(
                    s,
                    "  precision: `{}` has {} cells per half torus: P(one cell off) {:.2}, P(further) {:.1e}; graded: \
                     a far landing is a larger rounding error, not a failure, and the budget does not count it",
                    l.name, l.cells, l.p_one_cell_off, l.p_far
                );
                continue;
            }
            let _ = writeln!(
                s,
                "  precision: `{}` has {} cells per half torus: P(further) at a cell's edge {:.1e} ({} the {:.1e} per bootstrap \
                 below); twice as many cells: {:.1e}",
                l.name,
                l.cells,
                l.p_far_worst,
                if l.p_far_worst <= f.per_pbs { "within" } else { "over" },
                f.per_pbs,
                l.p_far_worst_finer
            );
        }
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "failure budget p_fail = 2^{:.0}: half for the bootstraps (≤ {:.1e} each landing two or more cells off, over 2^{:.0} \
             bootstraps), half for the weights (below)",
            f.p_fail.log2(),
            f.per_pbs,
            crate::lower::lut::HORIZON_PBS.log2()
        );
        if let Some((name, far)) = &f.worst_lut {
            let _ = writeln!(
                s,
                "  bootstraps: `{name}` lands further with P ≤ {far:.1e} at a cell's edge: {}",
                if *far <= f.per_pbs {
                    "within the budget"
                } else {
                    "OVER the budget (coarser cells or a larger p_fail)"
                }
            );
        }
        if let Some((pbs, p)) = f.run {
            let _ = writeln!(s, "  this run: {pbs} bootstraps, P(any lands further) ≤ {p:.1e}");
        }
    }
    if !r.budget.is_empty() {
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "noise budget of the weights (half an LSB of their format; a refresh rounds them back onto it)"
        );
        let rows: Vec<Vec<String>> = r
            .budget
            .iter()
            .map(|b| {
                vec![
                    b.name.clone(),
                    format!("2^{}", b.lsb),
                    format!("2^{:.1}", b.per_step_log2_std),
                    human_steps(b.steps_to_budget),
                    human_steps(b.median_break),
                    match b.decision {
                        Decision::NotNeeded => "not needed".into(),
                        Decision::Every { steps } => format!("every {steps} steps"),
                        Decision::Infeasible => "infeasible".into(),
                        Decision::Unsupported => "not refreshable".into(),
                    },
                    format!("{} ({} × {})", b.pbs_per_refresh, b.coeffs, b.digits),
                    format!("{:.1}", b.pbs_per_step()),
                ]
            })
            .collect();
        table(
            &mut s,
            &[
                "tensor",
                "LSB",
                "σ added per step",
                "steps to budget",
                "expected break",
                "refresh",
                "PBS per refresh",
                "PBS per step",
            ],
            &rows,
            &[2, 3, 4, 6, 7],
        );
        let _ = writeln!(
            s,
            "  budget: P(any coefficient ≥ half an LSB) ≤ p_fail/2 over {} steps; expected break: where that probability is ½;\n  \
             a refresh is one bootstrap per bit from the LSB to the top of the range plus the sign, for every coefficient",
            human_steps(crate::noise::refresh::HORIZON_STEPS as f64)
        );
        for b in &r.budget {
            if b.decision == Decision::Infeasible {
                let _ = writeln!(
                    s,
                    "  {}: one step adds σ 2^{:.1}, beyond half its LSB (2^{}): its last bits are noise after the first update and no\n  \
                     refresh can restore them, so none is scheduled (training absorbs the noise: `run --backend simulate` measures\n  \
                     its effect; pin a coarser `format {}` for exact weights)",
                    b.name,
                    b.per_step_log2_std,
                    b.lsb - 1,
                    b.name.split('|').next().unwrap_or(&b.name)
                );
            }
        }
    }
    if !r.tensors.is_empty() {
        let _ = writeln!(s);
        let _ = writeln!(s, "server tensors");
        let rows: Vec<Vec<String>> = r
            .tensors
            .iter()
            .map(|t| {
                vec![
                    t.name.clone(),
                    t.role.clone(),
                    format!("[{}, {}]", t.shape.0, t.shape.1),
                    format(&t.format),
                    t.layout.clone(),
                ]
            })
            .collect();
        table(&mut s, &["tensor", "role", "shape", "format", "layout"], &rows, &[]);
    }
    resources(&mut s, &r.resources);
    if !r.assumptions.is_empty() {
        let _ = writeln!(s);
        let _ = writeln!(s, "assumptions (not proven; the clear backend counts violations)");
        for a in &r.assumptions {
            let at = a.line.map_or(String::new(), |l| format!(" (line {l})"));
            let _ = writeln!(s, "  {} in {}{at}: {}", a.what, pair(a.range), a.reason);
        }
    }
    s
}

/// Why this bootstrap key: the rule is in `noise::choose`.
fn key_choice(s: &mut String, k: &crate::noise::KeyChoice) {
    let (Some(lut), Some(half)) = (&k.limiting_lut, k.log2_half_step) else { return };
    let verdicts: Vec<String> = k
        .candidates
        .iter()
        .map(|c| format!("{} adds σ 2^{:.1} ({})", c.bsk, c.out_log2_std, if c.meets { "fits" } else { "too noisy" }))
        .collect();
    let _ = writeln!(
        s,
        "  key: bsk {} chosen — the cheapest whose output σ stays under half of `{lut}`'s largest output step in \
         its worst epoch (2^{half:.1}): {}",
        k.name(),
        verdicts.join(", ")
    );
    if !k.candidates[k.chosen].meets {
        let _ = writeln!(s, "  warning: no parameter set meets this; the quietest was chosen");
    }
}

fn resources(s: &mut String, r: &super::Resources) {
    let others: Vec<&str> = r.allowed_param_sets.iter().map(String::as_str).filter(|id| *id != r.param_set).collect();
    let _ = writeln!(s);
    let _ = writeln!(s, "security & resources (encrypted backend, before the run)");
    let _ = writeln!(s, "  {:<20} {} ({}-bit security)", "parameter set", r.param_set, r.security_bits);
    if !others.is_empty() {
        let _ = writeln!(
            s,
            "  {:<20} {} (keygen --bsk; every set is {}-bit)",
            "also allowed",
            others.join(", "),
            r.security_bits
        );
    }
    let _ =
        writeln!(s, "  {:<20} {} (secret: stays with the data owner)", "client key", human_bytes(r.client_key_bytes));
    let _ = writeln!(
        s,
        "  {:<20} {} (bootstrap {}, keyswitch 2 × {}, packing keyswitch {})",
        "server keys",
        human_bytes(r.server_keys_bytes),
        human_bytes(r.bootstrap_key_bytes),
        human_bytes(r.keyswitch_keys_bytes / 2),
        human_bytes(r.packing_key_bytes)
    );
    let _ = writeln!(
        s,
        "  {:<20} {} ({} seeded GGSW + {} label LWE)",
        "upload per sample",
        human_bytes(r.upload_bytes_per_sample),
        r.ggsw_per_sample,
        r.label_lwes_per_sample
    );
    let _ = writeln!(
        s,
        "  {:<20} {:.3} s per sample, {:.2} s per step, {:.0} s per 1000 samples",
        "estimated time", r.est_seconds_per_sample, r.est_seconds_per_step, r.est_seconds_per_1000_samples
    );
    if let (Some(e), Some(t)) = (r.est_seconds_per_epoch, r.est_seconds_total) {
        let _ = writeln!(s, "  {:<20} {e:.0} s per epoch, {t:.0} s for the run", "");
    }
    for (i, line) in wrap(&r.timing_source, 96).iter().enumerate() {
        let _ = writeln!(s, "  {:<20} {line}", if i == 0 { "timing source" } else { "" });
    }
    if let Some(w) = &r.warning {
        let _ = writeln!(s, "  warning: {w}");
    }
}

/// Greedy word wrap at `width` characters.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in text.split_whitespace() {
        let last = lines.last_mut().map_or(0, |l| l.chars().count());
        if last > 0 && last + 1 + word.chars().count() > width {
            lines.push(String::new());
        }
        if let Some(l) = lines.last_mut() {
            if !l.is_empty() {
                l.push(' ');
            }
            l.push_str(word);
        }
    }
    lines
}

/// `336.0 KiB`-style sizes.
/// `12345.6` → `12346`, large counts with a power of ten.
fn human_steps(t: f64) -> String {
    if t < 1e6 {
        format!("{t:.0}")
    } else {
        format!("{t:.2e}")
    }
}

pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let (mut v, mut u) = (b as f64, 0);
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn shape(s: &[usize]) -> String {
    let v: Vec<String> = s.iter().map(|d| d.to_string()).collect();
    format!("[{}]", v.join(", "))
}

fn format(f: &FormatRow) -> String {
    format!("{}{}.{} @2^{}", if f.signed { "s" } else { "u" }, f.bits, f.frac, f.scale)
}

fn range(f: &FormatRow) -> String {
    let mark = if f.range_kind == "assumed" { " *" } else { "" };
    format!("{}{mark}", pair(f.range))
}

fn pair(r: (f64, f64)) -> String {
    format!("[{}, {}]", num(r.0), num(r.1))
}

fn num(x: f64) -> String {
    if x == x.trunc() && x.abs() < 1e9 {
        format!("{x:.0}")
    } else {
        format!("{x:.4}")
    }
}

/// Left-aligned columns, except `right` columns (numbers), separated by two spaces.
fn table(s: &mut String, header: &[&str], rows: &[Vec<String>], right: &[usize]) {
    let mut w: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |s: &mut String, cells: &[String]| {
        let mut out = String::from(" ");
        for (i, c) in cells.iter().enumerate() {
            let pad = w[i] - c.chars().count();
            out.push(' ');
            if right.contains(&i) {
                out.push_str(&" ".repeat(pad));
                out.push_str(c);
            } else {
                out.push_str(c);
                out.push_str(&" ".repeat(pad));
            }
            out.push(' ');
        }
        let _ = writeln!(s, "{}", out.trim_end());
    };
    line(s, &header.iter().map(|h| h.to_string()).collect::<Vec<_>>());
    let total: usize = w.iter().sum::<usize>() + 3 * w.len();
    let _ = writeln!(s, "  {}", "─".repeat(total.saturating_sub(2)));
    for r in rows {
        line(s, r);
    }
}
